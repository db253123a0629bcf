package health_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/health"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// Readiness: not ready before the first pass, then ready until an output
// fails or a secret goes stale, named with its kind and outputs; ready
// again once both clear. Check asks a served State and says the same.
func TestReadinessAndCheck(t *testing.T) {
	st := health.NewState(time.Minute)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv, err := health.Serve(health.Listener{Addr: addr}, st, health.NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// Serve listens before it returns: the first request is queued.
	check := func(live bool) (string, error) { return health.Check(t.Context(), addr, live, "") }
	if _, err := check(false); err == nil || !strings.Contains(err.Error(), "not rendered yet") || fail.KindOf(err) != fail.Unavailable {
		t.Fatalf("before the first pass: %v", err)
	}
	st.Rendered(nil)
	if answer, err := check(false); err != nil || answer != "ok\n" {
		t.Fatalf("after a clean pass: %q %v", answer, err)
	}
	st.Rendered([]string{"b.env", "a.env"})
	st.SetStale(1, "vault:secret/data/app", fail.Mark(fail.NotFound, errors.New("gone")), "a.env", "b.env")
	st.SetStale(1, "db_password", fail.Mark(fail.Integrity, errors.New("tampered")))
	ok, msg := st.Ready()
	want := "failing outputs: b.env, a.env\nsecrets kept at their last good value: db_password (integrity), vault:secret/data/app (not-found; outputs a.env, b.env)\n"
	if ok || msg != want {
		t.Fatalf("Ready = %v %q, want %q", ok, msg, want)
	}
	if _, err := check(false); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("/readyz with failures: %v", err)
	}
	st.Rendered(nil)
	st.SetStale(1, "db_password", nil)
	// A new owner (generation) keeps what it found and what it holds over
	// (a lease it did not read afresh); the old owner can clear neither.
	st.SetStale(2, "token", fail.Mark(fail.NotFound, errors.New("gone")))
	st.HandOver(2, func(name string) bool { return name == "vault:secret/data/app" })
	want = "secrets kept at their last good value: token (not-found), vault:secret/data/app (not-found; outputs a.env, b.env)\n"
	if ok, msg := st.Ready(); ok || msg != want {
		t.Fatalf("after HandOver(2): %v %q, want %q", ok, msg, want)
	}
	st.SetStale(1, "vault:secret/data/app", nil)
	if ok, _ := st.Ready(); ok {
		t.Fatal("the old owner cleared a mark the new one holds")
	}
	st.SetStale(2, "token", nil)
	st.SetStale(2, "vault:secret/data/app", nil)
	if ok, msg := st.Ready(); !ok {
		t.Fatalf("after clearing: %q", msg)
	}
	if answer, err := check(true); err != nil || answer != "ok\n" {
		t.Fatalf("/livez: %q %v", answer, err)
	}
}

// Alive: true within the window after a beat, false past it.
func TestAliveWindow(t *testing.T) {
	st := health.NewState(50 * time.Millisecond)
	if !st.Alive() {
		t.Fatal("not alive right after its first beat")
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.Alive() {
		if time.Now().After(deadline) {
			t.Fatal("still alive long past its window")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st.Beat()
	if !st.Alive() {
		t.Fatal("a beat did not make it alive again")
	}
}
