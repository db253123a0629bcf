// Package health owns what a running daemon tells its probes and scrapers:
// readiness (/readyz, and /healthz, the same), liveness (/livez), its
// Prometheus metrics (/metrics), the listener that serves them, and the
// question the `health` command asks of it (Check). It says which outputs
// fail and which secrets are stale, never a value.
package health

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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

// Serve listens on addr and serves /metrics (m), /readyz and /healthz
// (st.Ready) and /livez (st.Alive) until the returned server is closed.
func Serve(addr string, st *State, m *Metrics, log *slog.Logger) (*http.Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot serve metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.reg.Handler())
	ready := func(w http.ResponseWriter, _ *http.Request) {
		ok, msg := st.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprint(w, msg)
	}
	// /readyz: every output rendered, none failing, no secret stale.
	// /healthz is the same, for configs written before /readyz.
	mux.HandleFunc("/readyz", ready)
	mux.HandleFunc("/healthz", ready)
	// /livez: the main loop is going round (restart the container if not).
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		if !st.Alive() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "the daemon's main loop has not gone round for over a minute")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	log.Info("serving metrics", "address", l.Addr().String())
	return srv, nil
}

// Check asks a running daemon, at its metrics address (on loopback: an
// exec probe needs no exposed port), whether it is ready (or, with live,
// alive). It returns the daemon's answer; an error when it is not, or
// cannot be reached (class Unavailable).
func Check(ctx context.Context, addr string, live bool) (string, error) {
	path := "/readyz"
	if live {
		path = "/livez"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return "", fail.Mark(fail.Usage, fmt.Errorf("health: %w", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fail.Mark(fail.Unavailable, fmt.Errorf("health: the daemon does not answer at %s: %w", addr, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return string(body), fail.Mark(fail.Unavailable, fmt.Errorf("health: %s answers %s: %s", path, resp.Status, strings.TrimSpace(string(body))))
	}
	return string(body), nil
}
