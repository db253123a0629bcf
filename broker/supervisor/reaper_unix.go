//go:build unix

package supervisor

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// reapGrace is how long a zombie child the reaper did not start is left
// for its owner to wait for before the reaper takes it. A library that
// starts a process of its own (the AWS SDK's credential_process, say) waits
// for it as soon as it exits; taking it first would make that Wait fail
// with ECHILD. An orphan re-parented to PID 1 has no one to wait for it:
// it is reaped once it has been a zombie this long.
const reapGrace = 2 * time.Second

// Run reaps orphans on every SIGCHLD (and every few seconds, in case one
// was missed) until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)
	for {
		wait := r.reap(time.Now())
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-chld:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// reap waits for every zombie child that is not a known one and has been
// a zombie for reapGrace (first seen by an earlier scan), and returns when
// to scan next: sooner than the periodic scan when a zombie's grace ends.
func (r *Reaper) reap(now time.Time) time.Duration {
	const every = 5 * time.Second
	r.mu.Lock()
	defer r.mu.Unlock()
	next := every
	current := map[zombie]time.Time{}
	for _, z := range zombieChildren(os.Getpid()) {
		if r.known[z.pid] {
			continue
		}
		first, ok := r.zombies[z]
		if !ok {
			first = now
		}
		if now.Sub(first) >= reapGrace {
			var ws syscall.WaitStatus
			syscall.Wait4(z.pid, &ws, syscall.WNOHANG, nil)
			continue
		}
		current[z] = first
		next = min(next, first.Add(reapGrace).Sub(now)+10*time.Millisecond)
	}
	r.zombies = current // zombies no longer there were reaped by their owner
	return next
}
