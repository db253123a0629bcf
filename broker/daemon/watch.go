package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDirs watches dirs with inotify or, when the kernel has no inotify
// instance or watch left for this user, by polling (logged once).
func (d *daemon) watchDirs(dirs map[string]bool) (dirWatcher, error) {
	newWatcher := d.opts.newWatcher
	if newWatcher == nil {
		newWatcher = newNotifyWatcher
	}
	w, err := newWatcher()
	if err == nil {
		for dir := range dirs {
			if err = w.Add(dir); err != nil {
				w.Close()
				if !outOfWatches(err) {
					return nil, fmt.Errorf("cannot watch %s: %w", dir, err)
				}
				break
			}
		}
	}
	if err == nil {
		return w, nil
	}
	if !outOfWatches(err) {
		return nil, fmt.Errorf("cannot watch files: %w", err)
	}
	d.log.Warn("the kernel gives this user no more inotify instances or watches (fs.inotify.max_user_instances, max_user_watches); polling the watched files every second instead", "error", err)
	p := newPoller(pollEvery)
	for dir := range dirs {
		if err := p.Add(dir); err != nil {
			p.Close()
			return nil, fmt.Errorf("cannot watch %s: %w", dir, err)
		}
	}
	return p, nil
}

// watchFiles watches the directories of envelope and plain-file sources,
// template files and the config (directories, so atomic replacements are
// seen).
func (g *generation) watchFiles(ctx context.Context) error {
	sources := map[string][]string{} // path -> secret names
	for _, n := range g.names {
		d, _ := g.b.Declared(n)
		if d.Ref.Scheme == "envelope" || d.Ref.Scheme == "file" {
			p := filepath.Clean(g.cfg.Resolve(d.Ref.Path))
			sources[p] = append(sources[p], n)
		}
	}
	reloadOn := map[string]bool{}
	for _, p := range g.prepared {
		if p.Output.Template != "" {
			reloadOn[filepath.Clean(g.cfg.Resolve(p.Output.Template))] = true
		}
	}
	if g.d.opts.Config.Path != "" {
		if abs, err := filepath.Abs(g.d.opts.Config.Path); err == nil {
			reloadOn[abs] = true
		}
	}
	// Outputs: a file someone deletes or changes is written back on the
	// next pass (logged and counted as a restore).
	outputs := map[string]int{} // path -> output index; -1 for a directory
	outputDirs := map[string]bool{}
	inDir := map[string][]int{} // directory -> the outputs in it
	for i, p := range g.prepared {
		root := filepath.Clean(p.Root)
		abs := filepath.Join(root, filepath.Clean(p.Output.Path))
		outputs[abs] = i
		inDir[filepath.Dir(abs)] = append(inDir[filepath.Dir(abs)], i)
		for d := filepath.Dir(abs); strings.HasPrefix(d, root); d = filepath.Dir(d) {
			outputs[d] = -1 // a removed parent directory
			outputDirs[d] = true
			if d == root {
				break
			}
		}
	}
	if len(sources) == 0 && len(reloadOn) == 0 && len(outputs) == 0 {
		return nil
	}
	dirs := map[string]bool{}
	for p := range sources {
		dirs[filepath.Dir(p)] = true
	}
	for p := range reloadOn {
		dirs[filepath.Dir(p)] = true
	}
	w, err := g.d.watchDirs(dirs)
	if err != nil {
		return err
	}
	// Output directories may not exist until an output is written, and may
	// be removed and created again: (re)added whenever outputs change.
	watchOutputs := func() {
		for d := range outputDirs {
			w.Add(d)
		}
	}
	watchOutputs()
	// A source, template or config changed after the generation began
	// reading them but before the watches above existed: no event will
	// come for it, so its modification time tells.
	pending := map[string]bool{}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	now := time.Now()
	changedSinceStart := func(p string) bool {
		// A modification time in the future (a file unpacked with one,
		// clock skew) is no sign of a change: it would reload forever.
		info, err := os.Stat(p)
		return err == nil && info.ModTime().After(g.started) && !info.ModTime().After(now)
	}
	for p := range reloadOn {
		if changedSinceStart(p) {
			select {
			case g.d.reloadCh <- "changed while starting: " + p:
			default:
			}
		}
	}
	for p := range sources {
		if changedSinceStart(p) {
			pending[p] = true
			settle.Reset(fileSettle)
		}
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer w.Close()
		// Changed sources are re-read once they have been quiet for
		// fileSettle, so a file written in several steps is read whole.
		defer settle.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-w.Failures():
				g.d.log.Warn("file watcher", "error", err)
			case <-settle.C:
				for p := range pending {
					g.refetchLocal(ctx, p, sources[p])
				}
				clear(pending)
			case ev := <-w.Changes():
				if ev.Op == fsnotify.Chmod {
					continue
				}
				p := filepath.Clean(ev.Name)
				if reloadOn[p] {
					select {
					case g.d.reloadCh <- "changed: " + p:
					default:
					}
					continue
				}
				if _, ok := sources[p]; ok {
					pending[p] = true
					settle.Reset(fileSettle)
				}
				// An output changed or removed (our own writes included:
				// rendering it again finds it unchanged), or a directory
				// of outputs: render what may have been touched.
				i, isOutput := outputs[p]
				_, inOutputDir := outputs[filepath.Dir(p)]
				if isOutput || inOutputDir && !strings.Contains(filepath.Base(p), ".tmp-") {
					watchOutputs()
					g.mu.Lock()
					switch {
					case isOutput && i >= 0:
						g.dirty[i] = true
					case isOutput: // a directory of outputs
						g.allDirty = true
					default: // another file beside outputs (a bundle's versions)
						for _, j := range inDir[filepath.Dir(p)] {
							g.dirty[j] = true
						}
					}
					g.mu.Unlock()
					g.kick()
				}
			}
		}
	}()
	return nil
}

func (g *generation) refetchLocal(ctx context.Context, path string, names []string) {
	g.b.ForgetFile(path) // only this goroutine reads files after start
	changed := false
	for _, n := range names {
		d, _ := g.b.Declared(n)
		v, err := g.b.FetchLocal(ctx, d)
		if err != nil {
			// A file being replaced can be briefly missing or half
			// written by a non-atomic editor, or emptied: every output
			// keeps the last good value, and /healthz says so.
			g.d.m.FetchErrors.With(d.Ref.Scheme).Inc()
			g.d.log.Warn("re-reading a secret failed; every output keeps its last good value", "secret", n, "error", err)
			g.d.health.SetStale(g.id, n, err)
			continue
		}
		g.d.health.SetStale(g.id, n, nil)
		g.d.m.Fetches.With(d.Ref.Scheme).Inc()
		g.mu.Lock()
		if g.res.Values[n] != v {
			g.res.Values[n] = v
			g.markDirty(n)
			changed = true
		}
		g.mu.Unlock()
	}
	if changed {
		g.kick()
	}
}
