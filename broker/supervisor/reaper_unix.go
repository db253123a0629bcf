//go:build unix

package supervisor

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Run reaps orphans on every SIGCHLD (and every few seconds, in case one
// was missed) until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	defer signal.Stop(chld)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		r.reap()
		select {
		case <-ctx.Done():
			return
		case <-chld:
		case <-tick.C:
		}
	}
}

// reap waits for every zombie child that is not a known one.
func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, pid := range zombieChildren(os.Getpid()) {
		if r.known[pid] {
			continue
		}
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
	}
}
