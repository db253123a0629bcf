package cli_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/oidctest"
)

// A CI step gets an access token with exec: the token reaches the command
// in its environment, masked in its output; a refused client exits 7
// (denied) and the command does not run; run --once writes the token file.
func TestExecAndRunOnceWithAToken(t *testing.T) {
	setup(t)
	const secret = "cs-ci-client-secret-value"
	op := oidctest.Start(t, oidctest.Client{ID: "ci", Secret: secret})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.pem"), op.CAPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "secret"), []byte(secret), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	write := func(clientID string) {
		os.WriteFile(cfg, []byte(fmt.Sprintf("output_root: out\ntokens:\n  api:\n    issuer: %s\n    ca_cert: ca.pem\n    client_id: %s\n    client_secret: file:secret\nsecrets:\n  api_token: token:api\noutputs:\n  - path: token\n    secret: api_token\n", op.Issuer, clientID)), 0o600)
	}
	write("ci")
	r := run(t, "", "exec", "-c", cfg, "--secret", "TOKEN=token:api", "--redact-output", "--", "/bin/sh", "-c", `echo "token=$TOKEN"; printf '%s' "$TOKEN" > "$0"`, filepath.Join(dir, "seen"))
	if r.code != 0 || r.stdout != "token=[redacted]\n" {
		t.Fatalf("exec: %d %q %s", r.code, r.stdout, r.stderr)
	}
	seen, _ := os.ReadFile(filepath.Join(dir, "seen"))
	if _, err := op.Verify(context.Background(), string(seen)); err != nil {
		t.Fatalf("the command got a token the OP refuses: %v", err)
	}
	mustRun(t, "", "run", "--once", "-c", cfg)
	tok, _ := os.ReadFile(filepath.Join(dir, "out", "token"))
	if _, err := op.Verify(context.Background(), string(tok)); err != nil {
		t.Fatalf("run --once wrote a token the OP refuses: %v", err)
	}

	write("unknown-client")
	r = run(t, "", "exec", "-c", cfg, "--secret", "TOKEN=token:api", "--", "/bin/sh", "-c", `echo ran > "$0"`, filepath.Join(dir, "ran"))
	wantExit(t, r, 7, "invalid_client")
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Error("the command ran without its token")
	}
	if strings.Contains(r.stderr, secret) {
		t.Error("stderr carries the client secret")
	}
	r = run(t, "", "exec", "--secret", "TOKEN=token:api", "--", "/bin/true")
	wantExit(t, r, 2, "names no entry of tokens:")
}

// run --exec gives the supervised command the token in its environment
// and restarts it with each new token, before the old one expires.
func TestRunExecRestartsTheCommandWithEachNewToken(t *testing.T) {
	setup(t)
	const secret = "cs-exec-client-secret-value"
	op := oidctest.Start(t, oidctest.Client{ID: "app", Secret: secret, Lifetime: 4 * time.Second})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.pem"), op.CAPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "secret"), []byte(secret), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("tokens:\n  api:\n    token_url: %s\n    ca_cert: ca.pem\n    client_id: app\n    client_secret: file:secret\n", op.TokenURL())), 0o600)
	seen := filepath.Join(dir, "seen")
	// Each start records its token; the third start exits 0, which ends run.
	script := `echo "$TOKEN" >> "$0"; [ "$(wc -l < "$0")" -ge 3 ] && exit 0; exec sleep 60`
	done := make(chan result, 1)
	go func() {
		done <- run(t, "", "run", "-c", cfg, "--secret", "TOKEN=token:api", "--exec", "--", "/bin/sh", "-c", script, seen)
	}()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("run --exec: exit %d: %s", r.code, r.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the command was not restarted with three tokens within 60 s")
	}
	b, _ := os.ReadFile(seen)
	lines := strings.Fields(string(b))
	if len(lines) != 3 || lines[0] == lines[1] || lines[1] == lines[2] {
		t.Fatalf("the command saw %d starts, want 3 with a new token each: %v", len(lines), lines)
	}
	if _, err := op.Verify(context.Background(), lines[2]); err != nil {
		t.Errorf("the last token is refused: %v", err)
	}
}
