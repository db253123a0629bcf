package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/metricstest"
	"github.com/secrets-broker/secrets-broker/internal/procgroup"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
)

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "secrets-broker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// childLines reads the supervised command's output line by line, so the
// test waits on what the command does.
func childLines(t *testing.T, r io.Reader) func() string {
	ch := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return func() string {
		t.Helper()
		select {
		case s, ok := <-ch:
			if !ok {
				t.Fatal("the command's output ended")
			}
			return s
		case <-time.After(time.Minute):
			t.Fatal("the command printed nothing for a minute")
		}
		return ""
	}
}

func waitReads(t *testing.T, addr string, atLeast int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for metricstest.VaultFetches(addr) < atLeast {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not re-read Vault %d times", atLeast)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run --exec: a KV change restarts the command once with the new value,
// unchanged re-reads restart nothing, and SIGTERM to the broker reaches the
// command; the broker exits with the command's status.
func TestRunExecRestartsOncePerChange(t *testing.T) {
	bin := buildBinary(t)
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=one")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(v.Token), 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := l.Addr().String()
	l.Close()
	os.WriteFile(filepath.Join(dir, "broker.yaml"), fmt.Appendf(nil, `vault:
  address: %s
  auth: {method: token, token_file: token}
secrets:
  PW: vault:secret/data/app#password
refresh:
  static_interval: 100ms
  metrics_address: %s
exec:
  kill_timeout: 20s
`, v.Addr, metrics), 0o600)
	cmd := exec.Command(bin, "run", "-c", "broker.yaml", "--exec", "--", "/bin/sh", "-c",
		`trap 'echo term; exit 3' TERM; echo "start $PW token=${VAULT_TOKEN:-none}"; while :; do sleep 0.05; done`)
	cmd.Dir = dir
	procgroup.Own(cmd)
	cmd.Env = append(os.Environ(), "VAULT_TOKEN=broker-only")
	out, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	next := childLines(t, out)
	if got := next(); got != "start one token=none" {
		t.Fatalf("first start: %q", got)
	}
	// Three unchanged re-reads (and their render passes) restart nothing.
	waitReads(t, metrics, metricstest.VaultFetches(metrics)+3)
	v.Run(t, "kv", "put", "secret/app", "password=two")
	// The next thing the command sees must be this change: a restart
	// caused by an unchanged re-read would show "term", "start one" first.
	if got := next(); got != "term" {
		t.Fatalf("after the change: %q, want the old process stopped", got)
	}
	if got := next(); got != "start two token=none" {
		t.Fatalf("restart: %q", got)
	}
	waitReads(t, metrics, metricstest.VaultFetches(metrics)+3)
	cmd.Process.Signal(syscall.SIGTERM)
	if got := next(); got != "term" {
		t.Fatalf("SIGTERM to the broker: the command printed %q, want a single restart per change and the stop signal", got)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errorsAs(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("broker exit %v, want the command's status 3\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the broker did not exit within the kill timeout\n%s", stderr.String())
	}
	if n := strings.Count(stderr.String(), "restarting it"); n != 1 {
		t.Fatalf("%d restarts logged, want 1:\n%s", n, stderr.String())
	}
	if strings.Contains(stderr.String(), "two") {
		t.Fatal("a value reached the log")
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	if ok {
		*target = ee
	}
	return ok
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// As PID 1 of a PID namespace (unshare -fp), the broker reaps the orphans
// its command leaves: their zombies do not pile up.
func TestRunExecAsPID1ReapsOrphans(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatal("unshare (util-linux) is required: ", err)
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("value-a"), 0o600)
	os.WriteFile(filepath.Join(dir, "broker.yaml"), []byte("secrets:\n  A: file:a\n"), 0o600)
	// The command's child starts five short sleeps in the background and
	// exits: they are re-parented to PID 1, the broker.
	// --kill-child and a parent-death signal: if the test process dies,
	// unshare dies, and the namespace (the broker, its command) with it.
	cmd := exec.Command(unshare, "--fork", "--pid", "--mount-proc", "--kill-child", bin, "run", "-c", "broker.yaml", "--exec", "--", "/bin/sh", "-c",
		`trap 'exit 0' TERM; /bin/sh -c 'for i in 1 2 3 4 5; do sleep 0.2 & done'; echo "orphaned $A"; while :; do sleep 0.05; done`)
	cmd.Dir = dir
	procgroup.Own(cmd)
	out, _ := cmd.StdoutPipe()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range childrenOf(cmd.Process.Pid) {
			syscall.Kill(p, syscall.SIGKILL) // the broker: PID 1 of the namespace, which ends with it
		}
		cmd.Process.Kill()
		cmd.Wait()
	})
	next := childLines(t, out)
	if got := next(); got != "orphaned value-a" {
		t.Fatalf("command printed %q\n%s", got, stderr.String())
	}
	broker := childrenOf(cmd.Process.Pid)
	if len(broker) != 1 {
		t.Fatalf("unshare has children %v, want the broker", broker)
	}
	// The broker's children: the command (a shell, alive) and, until they
	// are reaped, the orphaned sleeps. Wait until only the command is left.
	deadline := time.Now().Add(time.Minute)
	for {
		kids := childrenOf(broker[0])
		zombies := 0
		for _, k := range kids {
			if procState(k) == "Z" {
				zombies++
			}
		}
		if len(kids) == 1 && zombies == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("as PID 1 the broker left %d children (%d zombies) after its command's orphans exited", len(kids), zombies)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// SIGTERM to the broker (unshare does not pass signals on): it stops
	// its command and exits with its status, and unshare with it.
	syscall.Kill(broker[0], syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
}

// childrenOf lists a process's children (host PIDs), from /proc.
func childrenOf(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
