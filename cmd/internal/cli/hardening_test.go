package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/cmd/internal/cli"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/kmsfake"
)

func kmsEnv(t *testing.T) *kmsfake.Server {
	t.Helper()
	srv := kmsfake.Start()
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_KMS", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	return srv
}

func kmsCalls(srv *kmsfake.Server) int {
	return srv.Calls("GenerateDataKey") + srv.Calls("Encrypt") + srv.Calls("Decrypt")
}

// Item 1: stanzas are not authenticated. One naming a stranger's KMS key,
// added by someone without keys, must never receive a data key nor make
// the broker connect anywhere.
func TestRotateNeverSealsToKeysReadFromTheFile(t *testing.T) {
	dir := setup(t)
	srv := kmsEnv(t)
	plain := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plain, []byte("a: one\nb: two\n"), 0o600)
	enc := filepath.Join(dir, "s.enc.yaml")
	mustRun(t, "", "encrypt", "--file", plain, "--out", enc)
	const evil = "awskms:arn:aws:kms:us-east-1:999999999999:key/attacker-key"
	data, _ := os.ReadFile(enc)
	f, err := envelope.ParseFile(data, enc)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append([]*envelope.Envelope{f.Integrity}, f.Entries[0].Envelope, f.Entries[1].Envelope) {
		e.Stanzas = append(e.Stanzas, envelope.Stanza{KeyID: evil, WrappedKey: []byte("junk")})
	}
	os.WriteFile(enc, f.MarshalYAML(), 0o600)

	r := run(t, "", "rotate", "--in", enc, "-w")
	wantExit(t, r, 2, "no sealing key configured")
	if !strings.Contains(r.stderr, `--seal-key "`+evil+`"`) || !strings.Contains(r.stderr, `--seal-key "local:`) {
		t.Fatalf("rotate does not list the file's key ids: %s", r.stderr)
	}
	mustRun(t, "", "rotate", "--in", enc, "-w", "--key", "local")
	out, _ := os.ReadFile(enc)
	if strings.Contains(mustRun(t, "", "inspect", "--in", enc), "attacker") {
		t.Fatalf("rotate sealed for the stranger's key:\n%s", out)
	}
	if n := kmsCalls(srv); n != 0 {
		t.Fatalf("rotate made %d KMS calls for a key id read from the file", n)
	}
	if got := mustRun(t, "", "decrypt", "--in", enc, "--entry", "b"); got != "two" {
		t.Fatalf("after rotate: %q", got)
	}
}

// Item 3: a staging file placed at the prod path (same key, other context)
// is refused by decrypt --context and by a config that requires it.
func TestFileContextRequiredOnRead(t *testing.T) {
	dir := setup(t)
	plain := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plain, []byte("db: staging-pw\n"), 0o600)
	prodPath := filepath.Join(dir, "prod.enc.yaml")
	mustRun(t, "", "encrypt", "--file", plain, "--out", prodPath, "--context", "env=staging")
	wantExit(t, run(t, "", "decrypt", "--in", prodPath, "--context", "env=prod"), 4, "env=prod")
	if got := mustRun(t, "", "decrypt", "--in", prodPath, "--context", "env=staging", "--entry", "db"); got != "staging-pw" {
		t.Fatalf("decrypt = %q", got)
	}
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(`output_root: out
secrets_files:
  prod.enc.yaml: {context: {env: prod}}
secrets:
  db: envelope:prod.enc.yaml#db
  other: {ref: "envelope:prod.enc.yaml#db", context: {tier: db}}
outputs:
  - path: db.txt
    secret: db
`), 0o600)
	r := run(t, "", "run", "--once", "-c", cfg)
	wantExit(t, r, 4, "env=prod")
	if _, err := os.Stat(filepath.Join(dir, "out", "db.txt")); err == nil {
		t.Fatal("the staging secret was written")
	}
	os.WriteFile(cfg, []byte("output_root: out\nsecrets_files:\n  typo.enc.yaml: {context: {env: prod}}\nsecrets:\n  db: envelope:prod.enc.yaml#db\n"), 0o600)
	wantExit(t, run(t, "", "validate", "-c", cfg), 2, `"typo.enc.yaml" is not the file of any envelope: secret`)
}

// Item 6: the child gets none of the broker's credentials, from every part
// of the AWS credential chain and Vault's.
func TestExecChildGetsNoBrokerCredentials(t *testing.T) {
	dir := setup(t)
	creds := []string{"VAULT_TOKEN", "VAULT_CLIENT_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_PROFILE",
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "SECRETS_BROKER_KEYS"}
	for _, c := range creds {
		t.Setenv(c, "broker-"+strings.ToLower(c))
	}
	t.Setenv("SECRETS_BROKER_KEYS", "")
	t.Setenv("AWS_REGION", "eu-west-1")
	os.WriteFile(filepath.Join(dir, "app"), []byte("app-secret"), 0o600)
	out := mustRun(t, "", "exec", "--secret", "APP=file:"+filepath.Join(dir, "app"), "--", "/usr/bin/env")
	for _, c := range creds {
		if strings.Contains(out, c+"=") {
			t.Errorf("child inherited %s", c)
		}
	}
	if !strings.Contains(out, "APP=app-secret") || !strings.Contains(out, "AWS_REGION=eu-west-1") {
		t.Fatalf("child env lacks the secret or a plain setting:\n%s", out)
	}
	out = mustRun(t, "", "exec", "--pass-broker-credentials", "--secret", "APP=file:"+filepath.Join(dir, "app"), "--", "/usr/bin/env")
	if !strings.Contains(out, "AWS_ROLE_ARN=broker-aws_role_arn") {
		t.Fatal("--pass-broker-credentials did not pass them")
	}
}

// Item 8: Ctrl-C or SIGTERM while waiting on stdin exits 130 and writes
// nothing; a FIFO key file is refused at once instead of hanging.
func TestInterruptWhileWaitingOnStdin(t *testing.T) {
	dir := setup(t)
	stdin, w := io.Pipe()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	out := filepath.Join(dir, "sealed.sbe")
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- cli.Main(ctx, cli.Env{Args: []string{"encrypt", "--name", "x", "--out", out}, Stdin: stdin, Stdout: io.Discard, Stderr: &stderr})
	}()
	cancel()
	select {
	case code := <-done:
		if code != 130 {
			t.Fatalf("exit %d, want 130: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("encrypt kept waiting on standard input after the interrupt")
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("an interrupted encrypt wrote its output")
	}
}

func TestFIFOKeyFileRefusedAtOnce(t *testing.T) {
	dir := setup(t)
	fifo := filepath.Join(dir, "fifo.key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sealed := mustRun(t, "v", "encrypt", "--name", "n")
	done := make(chan result, 1)
	go func() { done <- run(t, sealed, "decrypt", "--key-file", fifo) }()
	select {
	case r := <-done:
		wantExit(t, r, 3, "not a regular file")
	case <-time.After(30 * time.Second):
		t.Fatal("decrypt is waiting for a writer on the FIFO key file")
	}
}

func TestEncryptRefusesEmptyInput(t *testing.T) {
	setup(t)
	wantExit(t, run(t, "", "encrypt", "--name", "x"), 2, "--allow-empty")
	sealed := mustRun(t, "", "encrypt", "--name", "x", "--allow-empty")
	if got := mustRun(t, sealed, "decrypt", "--name", "x"); got != "" {
		t.Fatalf("decrypt = %q", got)
	}
}

// withFileSizeLimit runs fn with RLIMIT_FSIZE set to n bytes: writes past it
// fail with EFBIG, as on a full disk (Go ignores SIGXFSZ).
func withFileSizeLimit(t *testing.T, n uint64, fn func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
	fn()
}

func TestKeygenOnAFullDiskLeavesNothing(t *testing.T) {
	dir := setup(t)
	keyDir := filepath.Join(dir, "fresh")
	os.MkdirAll(keyDir, 0o700)
	var r result
	withFileSizeLimit(t, 64, func() { r = run(t, "", "keygen", "--out", filepath.Join(keyDir, "k.key")) })
	wantExit(t, r, 9, "nothing was left behind")
	if entries, _ := os.ReadDir(keyDir); len(entries) != 0 {
		t.Fatalf("keygen left %d file(s) behind: %v", len(entries), entries[0].Name())
	}
}

// Item 13: exit codes say what happened.
func TestExitCodesSayWhatHappened(t *testing.T) {
	dir := setup(t)
	// --key-file given explicitly: only that key; a broken default key
	// does not matter.
	other := filepath.Join(dir, "other.key")
	mustRun(t, "", "keygen", "--out", other)
	sealed := mustRun(t, "v", "encrypt", "--name", "n", "--key-file", other)
	os.Chmod(os.Getenv("SECRETS_BROKER_LOCAL_KEY"), 0o644)
	if got := mustRun(t, sealed, "decrypt", "--key-file", other); got != "v" {
		t.Fatalf("decrypt = %q", got)
	}
	// Oversized input is a format/limit error (8), not usage.
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, bytes.Repeat([]byte("#"), 65<<20), 0o600)
	wantExit(t, run(t, "", "encrypt", "--file", big, "--key-file", other), 8, "larger than")
	// World-writable modes are refused.
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(filepath.Join(dir, "tok"), []byte("token-value"), 0o600)
	os.WriteFile(cfg, []byte("output_root: out\nsecrets:\n  tok: file:tok\noutputs:\n  - path: tok.txt\n    secret: tok\n    mode: \"0777\"\n"), 0o600)
	wantExit(t, run(t, "", "validate", "-c", cfg), 2, "lets the group or others change")
	// A full disk while writing an output is a file-system error (9).
	os.WriteFile(cfg, []byte("output_root: out\nsecrets:\n  tok: file:tok\noutputs:\n  - path: tok.txt\n    secret: tok\n"), 0o600)
	os.MkdirAll(filepath.Join(dir, "out"), 0o700)
	var r result
	withFileSizeLimit(t, 4, func() { r = run(t, "", "run", "--once", "-c", cfg) })
	wantExit(t, r, 9, "file too large")
}

// encrypt --out onto an existing secrets file refuses, names --force, and
// leaves the file and its entries as they were; --force replaces it. Fails
// on c5e921c: exit 0 and the two existing entries gone. The same holds for
// a single envelope.
func TestEncryptNeverReplacesAnExistingFileUnasked(t *testing.T) {
	dir := setup(t)
	existing := filepath.Join(dir, "existing.yaml")
	os.WriteFile(existing, []byte("db_password: one\napi_key: two\n"), 0o600)
	add := filepath.Join(dir, "add.yaml")
	os.WriteFile(add, []byte("new_token: three\n"), 0o600)
	enc := filepath.Join(dir, "secrets.enc.yaml")
	mustRun(t, "", "encrypt", "--file", existing, "--out", enc)
	before := readFile(t, enc)

	wantExit(t, run(t, "", "encrypt", "--file", add, "--out", enc), 2, "--force")
	if readFile(t, enc) != before {
		t.Fatal("the refused encrypt changed the file")
	}
	if got := mustRun(t, "", "decrypt", "--in", enc, "--entry", "api_key"); got != "two" {
		t.Fatalf("api_key after the refused encrypt: %q", got)
	}
	single := filepath.Join(dir, "one.sbe")
	mustRun(t, "x-value", "encrypt", "--name", "x", "--out", single)
	wantExit(t, run(t, "y-value", "encrypt", "--name", "x", "--out", single), 2, "--force")

	mustRun(t, "", "encrypt", "--file", add, "--out", enc, "--force")
	if got := mustRun(t, "", "decrypt", "--in", enc, "--entry", "new_token"); got != "three" {
		t.Fatalf("after --force: %q", got)
	}
}

// --log-json: every line run --once and exec write to stderr is a JSON
// object (the per-output lines, warnings and the final error), so an init
// container and its sidecar feed one format into a log pipeline; and
// --log-level warn drops the info lines. Fails on c5e921c, which printed
// "secrets-broker: written app.env" as text.
func TestLogJSONCoversEveryLine(t *testing.T) {
	dir := setup(t)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("a-password"), 0o600)
	os.WriteFile(filepath.Join(dir, "short"), []byte("ab"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("output_root: out\nsecrets:\n  PW: file:pw\n  GONE: file:missing\noutputs:\n  - path: app.env\n    format: dotenv\n    secrets: [PW]\n  - path: gone.env\n    format: dotenv\n    secrets: [GONE]\n"), 0o600)
	jsonLines := func(what, stderr string) []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s: a stderr line is not JSON: %q\n%s", what, line, stderr)
			}
			out = append(out, m)
		}
		return out
	}
	r := run(t, "", "run", "--once", "--log-json", "--timeout", "1s", "-c", cfg)
	lines := jsonLines("run --once", r.stderr)
	var written, failed, final bool
	for _, m := range lines {
		written = written || (m["msg"] == "output written" && m["path"] == "app.env")
		failed = failed || (m["msg"] == "output failed" && m["path"] == "gone.env")
		final = final || (m["level"] == "ERROR" && m["exit_code"] != nil)
	}
	if r.code == 0 || !written || !failed || !final {
		t.Fatalf("run --once --log-json: exit %d; want the written and failed outputs and the final error as JSON: %s", r.code, r.stderr)
	}

	r = run(t, "", "exec", "--log-json", "--redact-output", "--secret", "S=file:"+filepath.Join(dir, "short"), "--", "/bin/sh", "-c", "echo child-ran")
	lines = jsonLines("exec", r.stderr)
	if r.code != 0 || len(lines) == 0 || lines[0]["level"] != "WARN" || !strings.Contains(r.stdout, "child-ran") {
		t.Fatalf("exec --log-json: exit %d; want the short-value warning as JSON: %s", r.code, r.stderr)
	}

	os.Remove(filepath.Join(dir, "out", "app.env"))
	r = run(t, "", "run", "--once", "--log-level", "warn", "--timeout", "1s", "-c", cfg)
	if strings.Contains(r.stderr, "output written") || !strings.Contains(r.stderr, "output failed") {
		t.Fatalf("--log-level warn: want the info lines dropped, the failure kept: %s", r.stderr)
	}
}
