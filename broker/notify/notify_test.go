//go:build unix

package notify_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/notify"
	"github.com/secrets-broker/secrets-broker/broker/supervisor"
)

// A pid file that does not hold one process id, or holds init's, or is
// longer than a number, is refused with its path named; nothing is
// signalled.
func TestSignalPIDFileRefusesWhatIsNotAPID(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"words.pid": "not a pid\n",
		"init.pid":  "1\n",
		"zero.pid":  "0",
		"long.pid":  strings.Repeat("1", 100),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		err := notify.SignalPIDFile(p, syscall.SIGUSR1)
		if err == nil || !strings.Contains(err.Error(), p) && !strings.Contains(err.Error(), "pid_file") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := notify.SignalPIDFile(filepath.Join(dir, "missing.pid"), syscall.SIGUSR1); err == nil || !strings.Contains(err.Error(), "cannot read pid_file") {
		t.Errorf("missing pid file: %v", err)
	}
}

// A pid file the broker's own user wrote, naming that user's process, is
// signalled.
func TestSignalPIDFileSignalsTheOwnersProcess(t *testing.T) {
	dir := t.TempDir()
	got := filepath.Join(dir, "signals")
	app := exec.Command("/bin/sh", "-c", `trap 'echo usr1 >> "$1"; exit 0' USR1; echo ready >> "$1"; while :; do sleep 0.05; done`, "sh", got)
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = app.Wait(); close(done) }()
	t.Cleanup(func() { app.Process.Kill(); <-done })
	for b, _ := os.ReadFile(got); !strings.Contains(string(b), "ready"); b, _ = os.ReadFile(got) {
		select {
		case <-done:
			t.Fatalf("the app exited before its trap was set: %v", waitErr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	pidFile := filepath.Join(dir, "app.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(app.Process.Pid)+"\n"), 0o600)
	if err := notify.SignalPIDFile(pidFile, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the app was not signalled")
	}
	if b, _ := os.ReadFile(got); !strings.Contains(string(b), "usr1") {
		t.Fatalf("the app's trap did not run: %q", b)
	}
}

// A notify command runs without the broker's credentials in its
// environment, and one that outlives its timeout is stopped with an error
// naming it.
func TestRunCommandWithoutCredentialsAndWithATimeout(t *testing.T) {
	ctx := context.Background()
	reaper, stop := supervisor.StartReaper(ctx)
	defer stop()
	t.Setenv("VAULT_TOKEN", "hvs.broker-only")
	out := filepath.Join(t.TempDir(), "env")
	err := notify.Run(ctx, &config.Notify{Command: []string{"/bin/sh", "-c", `echo "token=${VAULT_TOKEN-unset}" > "$0"`, out}}, reaper)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != "token=unset\n" {
		t.Fatalf("the notify command saw %q", b)
	}
	err = notify.Run(ctx, &config.Notify{Command: []string{"/bin/sleep", "30"}, Timeout: 100 * time.Millisecond}, reaper)
	if err == nil || !strings.Contains(err.Error(), "notify command /bin/sleep") {
		t.Fatalf("a command past its timeout: %v", err)
	}
}
