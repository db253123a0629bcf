package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/cmd/internal/cli"
)

func waitFile(t *testing.T, p, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if b, err := os.ReadFile(p); err == nil && string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run without --once: renders, reloads on SIGHUP, stops cleanly with exit 0
// when its context ends (SIGTERM in main).
func TestRunDaemonSIGHUP(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("value-a"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	base := "output_root: out\nsecrets:\n  a: file:a\noutputs:\n  - path: a.txt\n    secret: a\n"
	os.WriteFile(cfg, []byte(base), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, cli.Env{Args: []string{"run", "-c", cfg, "--log-json"}, Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &errb})
	}()
	waitFile(t, filepath.Join(dir, "out", "a.txt"), "value-a")
	// The config is changed in place of a watched directory file by rename;
	// SIGHUP would be needed if the watcher missed it: send it anyway.
	os.WriteFile(cfg+".new", []byte(base+"  - path: b.txt\n    secret: a\n"), 0o600)
	os.Rename(cfg+".new", cfg)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFile(t, filepath.Join(dir, "out", "b.txt"), "value-a")
	time.Sleep(300 * time.Millisecond) // let the SIGHUP reload finish logging
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not stop")
	}
	if !strings.Contains(errb.String(), `"msg":"reloading configuration","reason":"reload requested"`) {
		t.Fatalf("no JSON reload log:\n%s", errb.String())
	}
	wantExit(t, run(t, "", "run", "--dry-run", "-c", cfg), 2, "--dry-run")
}
