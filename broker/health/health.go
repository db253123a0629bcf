// Package health owns what a running daemon tells its probes and scrapers:
// readiness (/readyz, and /healthz, the same), liveness (/livez), its
// Prometheus metrics (/metrics), the listener that serves them, and the
// question the `health` command asks of it (Check). It says which outputs
// fail and which secrets are stale, never a value.
package health

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// State is what the daemon reports about itself: whether its main loop is
// going round, whether every output rendered, and which secrets are served
// from their last good value.
type State struct {
	// liveWindow is how long the main loop may go without a Beat and still
	// be alive.
	liveWindow time.Duration
	// beat is when the main loop last went round (unix nanoseconds).
	beat atomic.Int64

	mu       sync.Mutex
	failing  []string
	rendered bool
	// stale are secrets (or Vault requests) whose source could not be
	// re-read: every output keeps their last good value.
	stale map[string]staleMark
}

// staleMark is why a secret is stale, and which owner (a daemon
// generation) said so.
type staleMark struct {
	why   string
	owner uint64
}

// NewState returns the state of a daemon whose main loop, once it went
// round, is alive for liveWindow after each Beat.
func NewState(liveWindow time.Duration) *State {
	s := &State{liveWindow: liveWindow}
	s.Beat()
	return s
}

// Beat records that the main loop went round.
func (s *State) Beat() { s.beat.Store(time.Now().UnixNano()) }

// Alive reports whether the main loop went round within the live window.
func (s *State) Alive() bool {
	return time.Since(time.Unix(0, s.beat.Load())) < s.liveWindow
}

// Rendered records a render pass and the outputs that failed in it.
func (s *State) Rendered(failing []string) {
	s.mu.Lock()
	s.failing, s.rendered = failing, true
	s.mu.Unlock()
}

// SetStale records (err != nil) or clears, for owner (the daemon
// generation that read the source), that a secret name or Vault request is
// served from its last good value, with the outputs that use it when they
// are known. Only the owner of a mark clears it. /readyz shows the name,
// the kind of failure and the outputs, never a value or the source's own
// text.
func (s *State) SetStale(owner uint64, name string, err error, outputs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		if m, ok := s.stale[name]; ok && m.owner == owner {
			delete(s.stale, name)
		}
		return
	}
	if s.stale == nil {
		s.stale = map[string]staleMark{}
	}
	why := fail.KindOf(err).String()
	if len(outputs) > 0 {
		why += "; outputs " + strings.Join(outputs, ", ")
	}
	s.stale[name] = staleMark{why: why, owner: owner}
}

// HandOver gives owner (a new daemon generation) the marks of the names it
// holds over, which it did not read afresh (a held lease stays stale until
// its own renewal succeeds), and forgets the others' marks: it read every
// other source afresh.
func (s *State) HandOver(owner uint64, holds func(name string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, m := range s.stale {
		switch {
		case m.owner == owner:
		case holds(name):
			m.owner = owner
			s.stale[name] = m
		default:
			delete(s.stale, name)
		}
	}
}

// Ready says whether every output is rendered and no secret is served
// from a stale value, and what is wrong if not.
func (s *State) Ready() (bool, string) {
	s.mu.Lock()
	failing, rendered := s.failing, s.rendered
	var stale []string
	for n, m := range s.stale {
		stale = append(stale, n+" ("+m.why+")")
	}
	s.mu.Unlock()
	slices.Sort(stale)
	switch {
	case !rendered:
		return false, "not rendered yet\n"
	case len(failing) > 0 || len(stale) > 0:
		msg := ""
		if len(failing) > 0 {
			msg += "failing outputs: " + strings.Join(failing, ", ") + "\n"
		}
		if len(stale) > 0 {
			msg += "secrets kept at their last good value: " + strings.Join(stale, ", ") + "\n"
		}
		return false, msg
	}
	return true, "ok\n"
}
