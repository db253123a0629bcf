package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/format"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
)

func execBroker(t *testing.T, secrets ...string) (*broker.Broker, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := &config.Config{Dir: dir, Source: "(test)"}
	var flags []string
	for i := 0; i+1 < len(secrets); i += 2 {
		p := filepath.Join(dir, secrets[i])
		os.WriteFile(p, []byte(secrets[i+1]), 0o600)
		flags = append(flags, secrets[i]+"=file:"+p)
	}
	if err := cfg.AddSecretFlags(flags); err != nil {
		t.Fatal(err)
	}
	b := broker.New(cfg)
	t.Cleanup(b.Close)
	return b, dir
}

func runExec(t *testing.T, b *broker.Broker, opts broker.ExecOptions) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	opts.Stdout, opts.Stderr = &out, &errb
	if opts.Stdin == nil {
		opts.Stdin = strings.NewReader("")
	}
	err := b.Exec(context.Background(), opts)
	return out.String(), errb.String(), err
}

func TestExecEnvironmentHygiene(t *testing.T) {
	b, _ := execBroker(t, "DB_PASSWORD", "s3cr3t-pw", "API_KEY", "key-1")
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=/home/x", "VAULT_TOKEN=hvs.broker", "AWS_SECRET_ACCESS_KEY=aws-broker", "CI_JOB_ID=7", "DEBUG_TOKEN=dbg"}
	script := `echo "db=$DB_PASSWORD api=$API_KEY vt=${VAULT_TOKEN-unset} aws=${AWS_SECRET_ACCESS_KEY-unset} home=${HOME-unset} job=${CI_JOB_ID-unset} dbg=${DEBUG_TOKEN-unset}"`
	out, _, err := runExec(t, b, broker.ExecOptions{Command: []string{"/bin/sh", "-c", script}, BaseEnv: base, Deny: []string{"DEBUG_*"}})
	if err != nil {
		t.Fatal(err)
	}
	if out != "db=s3cr3t-pw api=key-1 vt=unset aws=unset home=/home/x job=7 dbg=unset\n" {
		t.Fatalf("got %q", out)
	}
	out, _, _ = runExec(t, b, broker.ExecOptions{Command: []string{"/bin/sh", "-c", script}, BaseEnv: base, Pristine: true, Allow: []string{"PATH", "CI_*"}})
	if out != "db=s3cr3t-pw api=key-1 vt=unset aws=unset home=unset job=7 dbg=unset\n" {
		t.Fatalf("pristine: %q", out)
	}
	out, _, _ = runExec(t, b, broker.ExecOptions{Command: []string{"/bin/sh", "-c", script}, BaseEnv: base, PassBrokerCredentials: true})
	if !strings.Contains(out, "vt=hvs.broker") {
		t.Fatalf("pass-broker-credentials: %q", out)
	}
	// Secrets are never on the child's command line.
	out, _, _ = runExec(t, b, broker.ExecOptions{Command: []string{"/bin/sh", "-c", `cat /proc/$$/cmdline | tr '\0' ' '`}, BaseEnv: base})
	if strings.Contains(out, "s3cr3t") {
		t.Fatal("secret on the command line")
	}
}

func TestExecExitCodeAndMissingSecret(t *testing.T) {
	b, dir := execBroker(t, "A", "1")
	_, _, err := runExec(t, b, broker.ExecOptions{Command: []string{"/bin/sh", "-c", "exit 7"}})
	var ee *broker.ExitError
	if !errors.As(err, &ee) || ee.Code != 7 {
		t.Fatalf("exit code: %v", err)
	}
	os.Remove(filepath.Join(dir, "A"))
	marker := filepath.Join(dir, "ran")
	_, _, err = runExec(t, b, broker.ExecOptions{Command: []string{"/bin/sh", "-c", "touch " + marker}})
	if err == nil || !strings.Contains(err.Error(), "not running the command") || !strings.Contains(err.Error(), "secret A") {
		t.Fatalf("missing secret: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("command ran with a missing secret")
	}
}

func TestExecForwardsSignals(t *testing.T) {
	b, _ := execBroker(t, "A", "1")
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- b.Exec(context.Background(), broker.ExecOptions{
			Command: []string{"/bin/sh", "-c", `trap 'echo got-usr1; exit 42' USR1; echo ready; while :; do sleep 0.05; done`},
			BaseEnv: []string{"PATH=" + os.Getenv("PATH")}, Stdin: strings.NewReader(""), Stdout: pw, Stderr: io.Discard,
		})
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatal("child did not start")
	}
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	if !sc.Scan() || sc.Text() != "got-usr1" {
		t.Fatal("signal not forwarded")
	}
	go io.Copy(io.Discard, pr)
	select {
	case err := <-done:
		var ee *broker.ExitError
		if !errors.As(err, &ee) || ee.Code != 42 {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child did not exit")
	}
}

// CVE-2021-32074: every line of a multi-line value is masked, before any
// other output.
func TestGitHubActions(t *testing.T) {
	b, dir := execBroker(t, "CERT", "-----BEGIN-----\nMIIB line2\n-----END-----\n", "PCT", "50%off")
	ghEnv := filepath.Join(dir, "github_env")
	out, _, err := runExec(t, b, broker.ExecOptions{Command: []string{"/bin/sh", "-c", "echo child-output"}, GitHubActions: true, GitHubEnv: ghEnv, BaseEnv: []string{"PATH=" + os.Getenv("PATH")}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"::add-mask::-----BEGIN-----", "::add-mask::MIIB line2", "::add-mask::-----END-----", "::add-mask::50%25off", "child-output"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("stdout:\n%s", out)
	}
	env := read(t, ghEnv)
	// NAME<<DELIM\nvalue\nDELIM\n, a random delimiter per value.
	if !strings.HasPrefix(env, "CERT<<ghadelimiter_") || !strings.Contains(env, "\n-----BEGIN-----\nMIIB line2\n-----END-----\n\n") || !strings.Contains(env, "PCT<<ghadelimiter_") {
		t.Fatalf("GITHUB_ENV:\n%s", env)
	}
	delim := strings.TrimPrefix(strings.SplitN(env, "\n", 2)[0], "CERT<<")
	if strings.Count(env, delim) != 2 {
		t.Fatal("delimiter not unique per value")
	}
}

// --only fetches, masks and exports just the variables it names; a name
// exec would not pass is refused before anything is fetched.
func TestExecOnly(t *testing.T) {
	b, dir := execBroker(t, "KEEP", "kept-value", "SKIP", "skipped-value")
	ghEnv := filepath.Join(dir, "github_env")
	out, _, err := runExec(t, b, broker.ExecOptions{NoChild: true, Only: []string{"KEEP"}, GitHubActions: true, GitHubEnv: ghEnv})
	if err != nil {
		t.Fatal(err)
	}
	if env := read(t, ghEnv); !strings.Contains(env, "KEEP<<") || strings.Contains(env, "SKIP") || strings.Contains(out, "skipped-value") {
		t.Errorf("--only KEEP: stdout %q GITHUB_ENV %q", out, env)
	}
	if _, _, err := runExec(t, b, broker.ExecOptions{NoChild: true, Only: []string{"NOPE"}}); err == nil || !strings.Contains(err.Error(), "--only NOPE: no secret is passed under that name") {
		t.Errorf("--only NOPE: %v", err)
	}
}

func TestRedactOutput(t *testing.T) {
	b, _ := execBroker(t, "PW", "hunter2-pa$$", "ML", "line-one\nline-two")
	script := `printf '%s|' "$PW"; printf '%s' "$PW" | base64; printf 'url=%s\n' 'hunter2-pa%24%24'; echo "$ML" >&2; printf 'hun'; sleep 0.1; printf 'ter2-pa$$ split\n'`
	out, errOut, err := runExec(t, b, broker.ExecOptions{Command: []string{"/bin/bash", "-c", script}, RedactOutput: true, BaseEnv: []string{"PATH=" + os.Getenv("PATH")}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "aHVudGVyMi1wYSQk") || strings.Contains(errOut, "line-one\nline-two") {
		t.Fatalf("secret leaked:\nstdout %q\nstderr %q", out, errOut)
	}
	if out != "[redacted]|[redacted]\nurl=[redacted]\n[redacted] split\n" {
		t.Fatalf("stdout %q", out)
	}
}

// An interactive prompt reaches the terminal while the child waits for
// input; it is not held back until the child writes more.
func TestRedactOutputPassesPromptsAtOnce(t *testing.T) {
	b, _ := execBroker(t, "PW", "hunter2-pa$$")
	inR, inW := io.Pipe()
	out := &brokertest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- b.Exec(context.Background(), broker.ExecOptions{Command: []string{"/bin/sh", "-c", `printf 'Password: '; read x; echo "got $x $PW"`},
			RedactOutput: true, BaseEnv: []string{"PATH=" + os.Getenv("PATH")}, Stdin: inR, Stdout: out, Stderr: io.Discard})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for out.String() != "Password: " {
		if time.Now().After(deadline) {
			t.Fatalf("prompt not shown while the child waits; stdout so far %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	inW.Write([]byte("yes\n"))
	inW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "Password: got yes [redacted]\n" {
		t.Fatalf("stdout %q", got)
	}
}

// Dotenv files render values a POSIX shell reads back exactly.
func TestDotenvReadByShell(t *testing.T) {
	for _, v := range []string{`a"b\c$d` + "`e", "multi\nline\n", "it's", "  spaced  "} {
		f := filepath.Join(t.TempDir(), "x.env")
		os.WriteFile(f, []byte("X="+format.DotenvQuote(v)+"\n"), 0o600)
		out, err := exec.Command("/bin/sh", "-c", `. "$1"; printf %s "$X"`, "sh", f).Output()
		if err != nil || string(out) != v {
			t.Errorf("sourced %q, got %q (%v)", v, out, err)
		}
	}
}

func TestGitLabDotenv(t *testing.T) {
	b, dir := execBroker(t, "TOKEN", "glpat-123", "PW", "a b")
	report := filepath.Join(dir, "build.env")
	if _, _, err := runExec(t, b, broker.ExecOptions{GitLabDotenv: report, NoChild: true}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, report); got != "PW=a b\nTOKEN=glpat-123\n" {
		t.Fatalf("dotenv report %q", got)
	}
	if info, _ := os.Stat(report); info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o", info.Mode().Perm())
	}
	b2, dir2 := execBroker(t, "ML", "a\nb")
	_, _, err := runExec(t, b2, broker.ExecOptions{GitLabDotenv: filepath.Join(dir2, "x.env"), NoChild: true})
	if err == nil || !strings.Contains(err.Error(), "multi-line") {
		t.Fatalf("multi-line value: %v", err)
	}
}
