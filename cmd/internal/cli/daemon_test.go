package cli_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
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

// Probes: /readyz, /livez and the health subcommand for exec probes.
func TestHealthProbes(t *testing.T) {
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	os.WriteFile(filepath.Join(dir, "a"), []byte("value-a"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("output_root: out\nrefresh: {metrics_address: \""+addr+"\"}\nsecrets:\n  a: file:a\n  b: file:b\noutputs:\n  - path: a.txt\n    secret: a\n  - path: b.txt\n    secret: b\n"), 0o600)
	wantExit(t, run(t, "", "health", "-c", cfg), 5, "does not answer")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(ctx, cli.Env{Args: []string{"run", "-c", cfg}, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard})
	}()
	defer func() {
		cancel()
		<-done
	}()
	waitFile(t, filepath.Join(dir, "out", "a.txt"), "value-a")
	// b's source is missing: alive, not ready, and it says why.
	if out := mustRun(t, "", "health", "--live", "-c", cfg); out != "ok\n" {
		t.Fatalf("health --live: %q", out)
	}
	r := run(t, "", "health", "-c", cfg)
	wantExit(t, r, 5, "failing outputs: b.txt")
	os.WriteFile(filepath.Join(dir, "b"), []byte("value-b"), 0o600)
	deadline := time.Now().Add(20 * time.Second)
	for run(t, "", "health", "--address", addr).code != 0 {
		if time.Now().After(deadline) {
			t.Fatal("never became ready after b appeared")
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/livez")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/livez: %v", err)
	}
	resp.Body.Close()
}
