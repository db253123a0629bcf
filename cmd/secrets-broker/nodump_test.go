package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// A command the broker runs, as the broker's own uid, cannot read what the
// broker stripped from its environment (VAULT_TOKEN, AWS credentials) from
// /proc/$PPID/environ, nor open the broker's memory: the broker marks
// itself not dumpable before it reads anything. Root (CAP_SYS_PTRACE) can
// still read both, so as root the test runs the broker and its child as
// uid 65534. Fails on c5e921c: the child printed the parent's environment.
func TestChildCannotReadTheBrokersEnvironOrMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("this test checks Linux's /proc; run it on Linux (GOOS=%s)", runtime.GOOS)
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's parent is 0700: let uid 65534 reach the binary
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "secrets-broker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	secret := filepath.Join(dir, "app-secret")
	os.WriteFile(secret, []byte("given-to-the-child"), 0o644)
	// The child reports what it could open; it prints the parent's
	// environment when it can, which the test then finds.
	script := `
if cat /proc/$PPID/environ >/dev/null 2>&1; then cat /proc/$PPID/environ | tr '\0' '\n'; echo "environ: readable"; else echo "environ: denied"; fi
if (exec 3</proc/$PPID/mem) 2>/dev/null; then echo "mem: readable"; else echo "mem: denied"; fi
echo "child has APP_SECRET=$APP_SECRET VAULT_TOKEN=${VAULT_TOKEN:-unset}"`
	cmd := exec.Command(bin, "exec", "--secret", "APP_SECRET=file:"+secret, "--", "/bin/sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"VAULT_TOKEN=hvs.stripped-vault-token",
		"AWS_SECRET_ACCESS_KEY=stripped-aws-secret",
		"SECRETS_BROKER_LOCAL_KEY=" + filepath.Join(dir, "none.key"),
	}
	if os.Getuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("exec: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "child has APP_SECRET=given-to-the-child VAULT_TOKEN=unset") {
		t.Fatalf("the child did not run with its secret and without the broker's token:\n%s", out)
	}
	for _, leaked := range []string{"hvs.stripped-vault-token", "stripped-aws-secret", "environ: readable", "mem: readable"} {
		if strings.Contains(out, leaked) {
			t.Errorf("the child read the broker's process (%q in its output):\n%s", leaked, out)
		}
	}
	if !strings.Contains(out, "environ: denied") || !strings.Contains(out, "mem: denied") {
		t.Fatalf("the child's checks did not run:\n%s", out)
	}
}
