package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// dirWatcher tells of changes in watched directories. watchFiles uses
// inotify (fsnotify); when the kernel will not give one more inotify
// instance or watch (fs.inotify.max_user_instances is 128 per user by
// default: a node with more brokers of one uid runs out), it polls the
// directories instead.
type dirWatcher interface {
	Add(dir string) error
	Changes() <-chan fsnotify.Event
	Failures() <-chan error
	Close() error
}

type notifyWatcher struct{ w *fsnotify.Watcher }

func newNotifyWatcher() (dirWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return notifyWatcher{w}, nil
}

func (n notifyWatcher) Add(dir string) error           { return n.w.Add(dir) }
func (n notifyWatcher) Changes() <-chan fsnotify.Event { return n.w.Events }
func (n notifyWatcher) Failures() <-chan error         { return n.w.Errors }
func (n notifyWatcher) Close() error                   { return n.w.Close() }

// outOfWatches says whether err is the kernel refusing an inotify
// instance or watch for lack of them (EMFILE, ENFILE, ENOSPC).
func outOfWatches(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOSPC)
}

// pollEvery is how often a polling watcher looks at its directories.
const pollEvery = time.Second

// poller compares each watched directory's entries (size, modification
// time, identity) with what it saw last, every pollEvery.
type poller struct {
	events chan fsnotify.Event
	errs   chan error
	stop   context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	dirs map[string]map[string]os.FileInfo
}

func newPoller(every time.Duration) *poller {
	ctx, cancel := context.WithCancel(context.Background())
	p := &poller{events: make(chan fsnotify.Event, 64), errs: make(chan error), stop: cancel, done: make(chan struct{}), dirs: map[string]map[string]os.FileInfo{}}
	go p.run(ctx, every)
	return p
}

func (p *poller) Add(dir string) error {
	snap, err := snapshot(dir)
	if err != nil {
		return err
	}
	p.mu.Lock()
	if _, ok := p.dirs[dir]; !ok {
		p.dirs[dir] = snap
	}
	p.mu.Unlock()
	return nil
}

func (p *poller) Changes() <-chan fsnotify.Event { return p.events }
func (p *poller) Failures() <-chan error         { return p.errs }

func (p *poller) Close() error {
	p.stop()
	<-p.done
	return nil
}

func snapshot(dir string) (map[string]os.FileInfo, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	snap := make(map[string]os.FileInfo, len(entries))
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			snap[e.Name()] = fi
		}
	}
	return snap, nil
}

func (p *poller) run(ctx context.Context, every time.Duration) {
	defer close(p.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		var changed []fsnotify.Event
		for dir, old := range p.dirs {
			now, err := snapshot(dir)
			if err != nil {
				now = map[string]os.FileInfo{} // removed: every entry went
			}
			for name, fi := range now {
				if was, ok := old[name]; !ok {
					changed = append(changed, fsnotify.Event{Name: filepath.Join(dir, name), Op: fsnotify.Create})
				} else if was.Size() != fi.Size() || !was.ModTime().Equal(fi.ModTime()) || !os.SameFile(was, fi) {
					changed = append(changed, fsnotify.Event{Name: filepath.Join(dir, name), Op: fsnotify.Write})
				}
			}
			for name := range old {
				if _, ok := now[name]; !ok {
					changed = append(changed, fsnotify.Event{Name: filepath.Join(dir, name), Op: fsnotify.Remove})
				}
			}
			if err != nil {
				delete(p.dirs, dir) // Add it again once it exists
			} else {
				p.dirs[dir] = now
			}
		}
		p.mu.Unlock()
		for _, ev := range changed {
			select {
			case p.events <- ev:
			case <-ctx.Done():
				return
			}
		}
	}
}
