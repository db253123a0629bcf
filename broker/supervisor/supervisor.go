package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/backoff"
)

// Config says how to run and treat the child.
type Config struct {
	// Command is the program and its arguments (no shell).
	Command        []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// ReloadSignal, when set, is sent on a change instead of restarting the
	// child (for apps that re-read their files on a signal).
	ReloadSignal syscall.Signal
	// KillSignal asks the child to stop (default SIGTERM); KillTimeout is
	// how long it has before SIGKILL (default 30 s).
	KillSignal  syscall.Signal
	KillTimeout time.Duration
	// Splay, when set, delays acting on a change by a random time up to it,
	// so a fleet does not restart at once.
	Splay time.Duration
	// RestartOnExit restarts a child that exits on its own (with backoff);
	// otherwise Run returns its status.
	RestartOnExit bool
	// Forward are the signals passed on to the child as they arrive.
	Forward []os.Signal
	Log     *slog.Logger
	// Reaper, when set, starts the child (so it never reaps it) and reaps
	// orphans.
	Reaper *Reaper
}

// Status is how the child ended.
type Status struct {
	// Code is the exit status, or 128 + the signal that killed it.
	Code int
}

// Change is a new environment for the child; Env nil means "the same
// environment, but something it reads changed".
type Change struct {
	Env []string
}

// Run starts the child with env and supervises it until it ends for good:
// it exits on its own (unless RestartOnExit), or ctx ends, in which case it
// is sent KillSignal (unless a stopping signal was just forwarded to it),
// then SIGKILL after KillTimeout. Each value from changes restarts it with
// the new environment, or sends it ReloadSignal, once. Run returns the
// child's last status; an error only when it cannot be started.
func Run(ctx context.Context, cfg Config, env []string, changes <-chan Change) (Status, error) {
	if len(cfg.Command) == 0 {
		return Status{}, errors.New("no command to run")
	}
	if cfg.KillSignal == 0 {
		cfg.KillSignal = syscall.SIGTERM
	}
	if cfg.KillTimeout <= 0 {
		cfg.KillTimeout = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	sigs := make(chan os.Signal, 8)
	if len(cfg.Forward) > 0 {
		signal.Notify(sigs, cfg.Forward...)
		defer signal.Stop(sigs)
	}
	s := &run{cfg: cfg}
	restarts := 0
	for {
		c, err := s.start(env)
		if err != nil {
			return Status{}, err
		}
		st, next, why := s.supervise(ctx, c, sigs, changes)
		switch why {
		case endStopped:
			return st, nil
		case endChanged:
			if next != nil {
				env = next
			}
			restarts = 0
			continue
		case endExited:
			if !cfg.RestartOnExit || ctx.Err() != nil {
				return st, nil
			}
			wait := backoff.Policy{Base: time.Second, Max: 30 * time.Second}.Delay(restarts)
			restarts++
			cfg.Log.Warn("the command exited; restarting it", "command", cfg.Command[0], "status", st.Code, "restart_in", wait.Round(time.Millisecond).String())
			if !backoff.Sleep(ctx, wait) {
				return st, nil
			}
		}
	}
}

type run struct {
	cfg Config
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	st   Status
}

func (s *run) start(env []string) (*child, error) {
	cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.cfg.Stdin, s.cfg.Stdout, s.cfg.Stderr
	start := cmd.Start
	if s.cfg.Reaper != nil {
		start = func() error { return s.cfg.Reaper.Start(cmd) }
	}
	if err := start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", s.cfg.Command[0], err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		c.st = statusOf(cmd.Wait())
		if s.cfg.Reaper != nil {
			s.cfg.Reaper.Done(cmd.Process.Pid)
		}
		close(c.done)
	}()
	s.cfg.Log.Info("command started", "command", s.cfg.Command[0], "pid", cmd.Process.Pid)
	return c, nil
}

type ending int

const (
	endExited ending = iota
	endStopped
	endChanged
)

// stopping reports whether sig asks a process to end.
func stopping(sig os.Signal) bool {
	return sig == syscall.SIGTERM || sig == syscall.SIGINT || sig == syscall.SIGQUIT
}

func (s *run) supervise(ctx context.Context, c *child, sigs <-chan os.Signal, changes <-chan Change) (Status, []string, ending) {
	ctxDone := ctx.Done()
	forwardedStop := false
	for {
		select {
		case <-c.done:
			if ctx.Err() != nil || forwardedStop {
				return c.st, nil, endStopped
			}
			return c.st, nil, endExited
		case sig := <-sigs:
			if stopping(sig) {
				if forwardedStop || ctx.Err() != nil {
					continue // the child was already asked to stop
				}
				forwardedStop = true
				go s.killAfterTimeout(c)
			}
			c.cmd.Process.Signal(sig)
		case <-ctxDone:
			ctxDone = nil
			if !forwardedStop {
				c.cmd.Process.Signal(s.cfg.KillSignal)
				go s.killAfterTimeout(c)
			}
		case ch, ok := <-changes:
			if !ok {
				changes = nil
				continue
			}
			if s.cfg.Splay > 0 {
				d := time.Duration(rand.Int64N(int64(s.cfg.Splay) + 1))
				select {
				case <-ctx.Done():
					continue
				case <-time.After(d):
				}
			}
			if s.cfg.ReloadSignal != 0 && ch.Env == nil {
				s.cfg.Log.Info("a file the command reads changed; signalling it", "command", s.cfg.Command[0], "signal", s.cfg.ReloadSignal.String())
				c.cmd.Process.Signal(s.cfg.ReloadSignal)
				continue
			}
			if s.cfg.ReloadSignal != 0 {
				// The environment of a running process cannot change: a
				// new environment always needs a new process.
				s.cfg.Log.Info("the command's secrets changed; its environment can only change by restarting it", "command", s.cfg.Command[0])
			}
			s.cfg.Log.Info("the command's secrets changed; restarting it", "command", s.cfg.Command[0])
			s.stop(c)
			return c.st, ch.Env, endChanged
		}
	}
}

// stop asks the child to end with KillSignal and kills it after
// KillTimeout; it returns once the child has ended.
func (s *run) stop(c *child) {
	c.cmd.Process.Signal(s.cfg.KillSignal)
	s.killAfterTimeout(c)
}

func (s *run) killAfterTimeout(c *child) {
	t := time.NewTimer(s.cfg.KillTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		s.cfg.Log.Warn("the command did not stop in time; killing it", "command", s.cfg.Command[0], "kill_timeout", s.cfg.KillTimeout.String())
		c.cmd.Process.Kill()
		<-c.done
	}
}

func statusOf(err error) Status {
	if err == nil {
		return Status{}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return Status{Code: 128 + int(ws.Signal())}
		}
		return Status{Code: ee.ExitCode()}
	}
	return Status{Code: 1}
}

// Reaper reaps orphaned processes re-parented to this one (when it is PID
// 1 in a container or PID namespace), leaving alone the children it started
// itself, whose owners wait for them.
type Reaper struct {
	mu    sync.Mutex
	known map[int]bool
	// zombies are the unknown zombie children seen, and when first seen:
	// each is left reapGrace for its owner to wait for.
	zombies map[zombie]time.Time
}

// zombie names a zombie child by pid and start time (a pid can be reused
// once its zombie is gone).
type zombie struct {
	pid   int
	start string
}

// Start starts cmd as a known child: the reaper never takes it.
func (r *Reaper) Start(cmd *exec.Cmd) error {
	if r == nil {
		return cmd.Start()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	if r.known == nil {
		r.known = map[int]bool{}
	}
	r.known[cmd.Process.Pid] = true
	return nil
}

// Done forgets a known child once its owner has waited for it.
func (r *Reaper) Done(pid int) {
	if r == nil {
		return
	}
	r.mu.Lock()
	delete(r.known, pid)
	r.mu.Unlock()
}

// IsInit reports whether this process is PID 1 (a container's or a PID
// namespace's init), which must reap orphans.
func IsInit() bool { return os.Getpid() == 1 }

// StartReaper starts reaping orphans when this process is PID 1 and
// returns the reaper (nil otherwise: there is nothing to reap) and a
// function that stops it. It reaps until stop, not until ctx ends, so the
// command's last orphans are reaped while the broker stops.
func StartReaper(ctx context.Context) (r *Reaper, stop func()) {
	if !IsInit() {
		return nil, func() {}
	}
	r = &Reaper{}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go r.Run(rctx)
	return r, cancel
}
