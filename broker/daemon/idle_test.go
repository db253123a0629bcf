package daemon_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/daemon"
	"github.com/secrets-broker/secrets-broker/internal/memtrim"
)

// An idle daemon drops its executable's pages after its last render pass and
// again after each later one: the resident file-backed memory (of this
// test binary) drops.
func TestIdleDaemonPagesOutItsExecutable(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("memtrim works on Linux only")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("t-1"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("output_root: out\nsecrets:\n  token: file:token\noutputs:\n  - path: token.txt\n    secret: token\n"), 0o600)
	type trim struct{ before, after memtrim.Stats }
	trims := make(chan trim, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{Config: config.Source{Path: cfg}, Timeout: 5 * time.Second,
			Logger: slog.New(slog.DiscardHandler), IdleTrim: 200 * time.Millisecond,
			Trimmed: func(before, after memtrim.Stats) { trims <- trim{before, after} }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wait := func(what string) trim {
		t.Helper()
		select {
		case tr := <-trims:
			return tr
		case <-time.After(time.Minute):
			t.Fatalf("no idle trim %s", what)
		}
		return trim{}
	}
	first := wait("after the first render")
	if first.before.File == 0 || first.after.File > first.before.File/2 {
		t.Fatalf("idle trim: file-backed resident memory %d KiB -> %d KiB; want it at least halved", first.before.File, first.after.File)
	}
	// A change renders again, and the daemon trims again once idle.
	os.WriteFile(filepath.Join(dir, "token"), []byte("t-2"), 0o600)
	wait("after a later render")
	if b, _ := os.ReadFile(filepath.Join(dir, "out", "token.txt")); string(b) != "t-2" {
		t.Fatalf("token.txt = %q after the change", b)
	}
	t.Logf("idle trim: RSS %d KiB -> %d KiB", first.before.RSS, first.after.RSS)
}
