package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/cmd/internal/cli"
	"github.com/secrets-broker/secrets-broker/internal/freeport"
)

// consul-template-style flags: --template SRC:DST[:COMMAND], --vault-addr,
// --log-level, --pid-file; and a clear word when there is no config.
func TestConsulTemplateStyleFlags(t *testing.T) {
	dir := setup(t)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret-value"), 0o600)
	os.WriteFile(filepath.Join(dir, "app.tmpl"), []byte(`password={{ secret "PW" }}`+"\n"), 0o600)
	t.Chdir(dir)
	mustRun(t, "", "run", "--once", "--secret", "PW=file:pw", "--template", "app.tmpl:"+filepath.Join(dir, "out", "app.conf")+":touch notified")
	if got := readFile(t, filepath.Join(dir, "out", "app.conf")); got != "password=s3cret-value\n" {
		t.Fatalf("app.conf = %q", got)
	}
	wantExit(t, run(t, "", "run", "--once", "--template", "app.tmpl"), 2, "is not SRC:DST[:COMMAND]")
	// A destination outside the first one's directory is written beneath
	// its own directory, as consul-template writes it.
	mustRun(t, "", "run", "--once", "--secret", "PW=file:pw", "--template", "app.tmpl:out/a", "--template", "app.tmpl:"+filepath.Join(dir, "elsewhere", "b"))
	for _, p := range []string{"out/a", "elsewhere/b"} {
		if got := readFile(t, filepath.Join(dir, p)); got != "password=s3cret-value\n" {
			t.Errorf("%s = %q", p, got)
		}
	}

	// No config at all: say what is needed (run --once, run, validate).
	t.Setenv("SECRETS_BROKER_CONFIG", "")
	for _, args := range [][]string{{"run", "--once"}, {"run"}, {"validate"}} {
		wantExit(t, run(t, "", args...), 2, "no configuration: give a config file (-c FILE")
	}

	// --vault-addr wins over VAULT_ADDR; --log-level error hides the
	// retry warnings, and a bad level is refused.
	port, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "s.test")
	addr := fmt.Sprintf("http://127.0.0.1:%d", port)
	r := run(t, "", "exec", "--vault-addr", addr, "--timeout", "300ms", "--log-level", "error", "--secret", "PW=vault:secret/data/app#password", "--", "/bin/true")
	wantExit(t, r, 5, strconv.Itoa(port))
	if strings.Contains(r.stderr, "level=WARN") {
		t.Fatalf("--log-level error still logged warnings:\n%s", r.stderr)
	}
	wantExit(t, run(t, "", "exec", "--log-level", "loud", "--secret", "PW=file:pw", "--", "/bin/true"), 2, `--log-level "loud"`)

	// --pid-file: written while the daemon runs, removed when it stops.
	pidFile := filepath.Join(dir, "broker.pid")
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("output_root: out\nsecrets:\n  PW: file:pw\noutputs:\n  - path: pw.txt\n    secret: PW\n"), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- cli.Main(ctx, cli.Env{Args: []string{"run", "-c", cfg, "--pid-file", pidFile}, Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}, Stderr: &errb})
	}()
	waitFile(t, pidFile, strconv.Itoa(os.Getpid())+"\n")
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not stop")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("pid file left behind: %v", err)
	}
}

// run --exec with a command that cannot be started ends with that error,
// instead of keeping the daemon running without its command.
func TestRunExecWithACommandThatCannotStart(t *testing.T) {
	dir := setup(t)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret-value"), 0o600)
	done := make(chan result, 1)
	go func() {
		done <- run(t, "", "run", "--secret", "PW=file:"+filepath.Join(dir, "pw"), "--exec", "--", filepath.Join(dir, "no-such-app"))
	}()
	select {
	case r := <-done:
		wantExit(t, r, 2, "cannot start "+filepath.Join(dir, "no-such-app"))
	case <-time.After(time.Minute):
		t.Fatal("the broker kept running although its command could not start")
	}
}
