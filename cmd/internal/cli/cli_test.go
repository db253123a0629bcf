package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/cmd/internal/cli"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
	"github.com/secrets-broker/secrets-broker/internal/kmsfake"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	// Safe for concurrent writes: run --exec copies its child's output
	// into these while the broker logs to stderr (an *os.File in use).
	var out, errb brokertest.Buffer
	code := cli.Main(context.Background(), cli.Env{Args: args, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Version: "v0.0.0-test"})
	return result{code, out.String(), errb.String()}
}

func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
	}
	return r.stdout
}

func wantExit(t *testing.T, r result, code int, msg string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, msg) {
		t.Fatalf("exit %d (want %d), stderr %q (want %q)", r.code, code, r.stderr, msg)
	}
}

func setup(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("SECRETS_BROKER_LOCAL_KEY", filepath.Join(dir, "keys", "local.key"))
	t.Setenv("SECRETS_BROKER_KEYS", "")
	keyID := strings.TrimSpace(mustRun(t, "", "keygen"))
	if !strings.HasPrefix(keyID, "local:") {
		t.Fatalf("keygen printed %q", keyID)
	}
	return dir
}

func TestEncryptDecryptSingle(t *testing.T) {
	dir := setup(t)
	sealed := mustRun(t, "hunter2", "encrypt", "--name", "db_password", "--context", "env=prod")
	if !strings.HasPrefix(sealed, "sbe1:") || strings.Contains(sealed, "hunter2") {
		t.Fatalf("encrypt printed %q", sealed)
	}
	if got := mustRun(t, sealed, "decrypt", "--name", "db_password", "--context", "env=prod"); got != "hunter2" {
		t.Fatalf("decrypt printed %q", got)
	}
	out := filepath.Join(dir, "out", "pw")
	mustRun(t, sealed, "decrypt", "--out", out)
	info, err := os.Stat(out)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("decrypt --out: %v mode %v", err, info.Mode())
	}
	wantExit(t, run(t, sealed, "decrypt", "--name", "api_key"), 4, `sealed for secret "db_password"`)
	wantExit(t, run(t, sealed, "decrypt", "--context", "env=dev"), 4, "decryption failed")
	inspect := mustRun(t, sealed, "inspect")
	if !strings.Contains(inspect, "db_password") || !strings.Contains(inspect, "env=prod") || strings.Contains(inspect, "hunter2") {
		t.Fatalf("inspect printed %q", inspect)
	}
}

func TestUsageErrors(t *testing.T) {
	setup(t)
	wantExit(t, run(t, "", "encrypt", "--name", "x", "hunter2"), 2, "never taken on the command line")
	wantExit(t, run(t, "x", "encrypt"), 2, "--name is required")
	wantExit(t, run(t, "x", "encrypt", "--bogus"), 2, "unknown flag")
	wantExit(t, run(t, "x", "encrypt", "--name", "bad name"), 2, "character")
	wantExit(t, run(t, "x", "encrypt", "--name", "x", "--key", "gcpkms:foo"), 2, "not a key spec")
	wantExit(t, run(t, "x", "encrypt", "--name", "x", "--context", "novalue"), 2, "KEY=VALUE")
	wantExit(t, run(t, "", "rewrap", "--in", "x"), 2, "nothing to do")
	wantExit(t, run(t, "sbe1:AAAA", "decrypt"), 8, "malformed envelope")
	wantExit(t, run(t, "version: 1\nentries: {}\n", "decrypt"), 8, `missing key "integrity"`)
	r := run(t, "", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Exit codes:") || !strings.Contains(r.stdout, "awskms:ARN") {
		t.Fatalf("--help lacks exit codes or key specs: %q", r.stdout)
	}
	if v := mustRun(t, "", "version"); !strings.Contains(v, "v0.0.0-test") {
		t.Fatalf("version printed %q", v)
	}
	if c := mustRun(t, "", "completion", "bash"); !strings.Contains(c, "secrets-broker") {
		t.Fatal("no bash completion")
	}
}

func TestNoKeyExit3(t *testing.T) {
	setup(t)
	sealed := mustRun(t, "v", "encrypt", "--name", "x")
	t.Setenv("SECRETS_BROKER_LOCAL_KEY", filepath.Join(t.TempDir(), "other.key"))
	mustRun(t, "", "keygen")
	wantExit(t, run(t, sealed, "decrypt"), 3, "no configured key can open it")
}

func TestSecretsFileRewrapRotate(t *testing.T) {
	dir := setup(t)
	plain := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plain, []byte("a: one\nb: |\n  two\n  lines\nc: 3\n"), 0o600)
	enc := filepath.Join(dir, "s.enc.yaml")
	mustRun(t, "", "encrypt", "--file", plain, "--out", enc)
	if got := mustRun(t, "", "decrypt", "--in", enc); got != "a: one\nb: |\n    two\n    lines\nc: \"3\"\n" {
		t.Fatalf("decrypt printed %q", got)
	}
	if got := mustRun(t, "", "decrypt", "--in", enc, "--entry", "b"); got != "two\nlines\n" {
		t.Fatalf("entry b = %q", got)
	}
	wantExit(t, run(t, "", "decrypt", "--in", enc, "--entry", "zz"), 6, `no secret "zz"`)

	// Add a second local key, then remove the first: ciphertext untouched.
	second := filepath.Join(dir, "second.key")
	secondID := strings.TrimSpace(mustRun(t, "", "keygen", "--out", second))
	firstID := strings.TrimSpace(strings.Split(mustRun(t, "", "inspect", "--in", enc, "--json"), "\"key_ids\": [\n")[1])
	firstID = strings.Trim(strings.SplitN(firstID, "\n", 2)[0], `", `)
	before, _ := os.ReadFile(enc)
	mustRun(t, "", "rewrap", "--in", enc, "-w", "--key", "local", "--key-file", second, "--add-key", secondID, "--remove-key", firstID)
	after, _ := os.ReadFile(enc)
	if bytes.Equal(before, after) || strings.Contains(string(after), firstID) {
		t.Fatal("rewrap did not change the key ids")
	}
	// The default key no longer opens it; the second key does.
	wantExit(t, run(t, "", "decrypt", "--in", enc), 3, "no configured key")
	if got := mustRun(t, "", "decrypt", "--in", enc, "--key-file", second, "--entry", "a"); got != "one" {
		t.Fatalf("after rewrap: %q", got)
	}
	// Rotate: new data keys, same key ids, same values.
	mustRun(t, "", "rotate", "--in", enc, "-w", "--key-file", second)
	rotated, _ := os.ReadFile(enc)
	if bytes.Equal(rotated, after) {
		t.Fatal("rotate changed nothing")
	}
	if got := mustRun(t, "", "decrypt", "--in", enc, "--key-file", second, "--entry", "c"); got != "3" {
		t.Fatalf("after rotate: %q", got)
	}
	if info, _ := os.Stat(enc); info.Mode().Perm() != 0o600 {
		t.Fatalf("rewritten file mode %v", info.Mode())
	}
	// Tampering with the written file is caught.
	lines := strings.Split(string(rotated), "\n")
	var kept []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "  a: ") {
			kept = append(kept, l)
		}
	}
	os.WriteFile(enc, []byte(strings.Join(kept, "\n")), 0o600)
	wantExit(t, run(t, "", "decrypt", "--in", enc, "--key-file", second, "--entry", "b"), 4, "integrity check failed")
}

// The AWS KMS key spec through the CLI, configured the standard way
// (AWS_ENDPOINT_URL_KMS, credential env vars), against the KMS test double.
func TestKMSFromEnvironment(t *testing.T) {
	setup(t)
	srv := kmsfake.Start()
	defer srv.Close()
	arn := srv.CreateKey("eu-central-1")
	t.Setenv("AWS_ENDPOINT_URL_KMS", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	sealed := mustRun(t, "kms-secret", "encrypt", "--name", "n", "--key", "awskms:"+arn)
	// Not configured: the envelope does not choose to call KMS.
	wantExit(t, run(t, sealed, "decrypt"), 3, "awskms:"+arn)
	if got := mustRun(t, sealed, "decrypt", "--key", "awskms:"+arn); got != "kms-secret" {
		t.Fatalf("decrypt = %q", got)
	}
	srv.Deny(arn, true)
	r := run(t, sealed, "decrypt", "--key", "awskms:"+arn)
	wantExit(t, r, 3, "denied")
	if strings.Contains(r.stderr, "kms-secret") || strings.Contains(r.stderr, "test-secret") {
		t.Fatal("secret in error")
	}
}
