package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/oidctest"
)

// The daemon replaces a token before it expires, over several lifetimes:
// the token file always holds a token the OP accepts. With the OP down the
// file keeps the last token; once it expires /readyz says so, naming the
// entry and the output; when the OP is back a new token is written and
// /readyz recovers.
func TestDaemonKeepsTheTokenFreshAndSaysWhenItExpires(t *testing.T) {
	const secret = "cs-daemon-client-secret-value"
	const life = 5 * time.Second
	op := oidctest.Start(t, oidctest.Client{ID: "svc", Secret: secret, Lifetime: life})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.pem"), op.CAPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "client_secret"), []byte(secret), 0o600)
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`output_root: out
refresh: {metrics_address: %s}
tokens:
  api:
    token_url: %s
    ca_cert: ca.pem
    client_id: svc
    client_secret: file:client_secret
secrets:
  api_token: token:api
outputs:
  - path: token
    secret: api_token
`, addr, op.TokenURL())), 0o600)
	d := startDaemon(t, cfg)
	out := filepath.Join(dir, "out", "token")
	d.eventuallyLogged(t, 20*time.Second, "the first token", func() bool { _, err := os.Stat(out); return err == nil })

	seen := map[string]bool{}
	deadline := time.Now().Add(10 * life)
	for len(seen) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d tokens in %v; daemon log:\n%s", len(seen), 10*life, d.logs.String())
		}
		tok, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.Verify(context.Background(), string(tok)); err != nil {
			t.Fatalf("the token file holds a token the OP refuses (a gap): %v; daemon log:\n%s", err, d.logs.String())
		}
		seen[string(tok)] = true
		time.Sleep(100 * time.Millisecond)
	}

	readyz := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := readyz(); code != http.StatusOK {
		t.Fatalf("/readyz with a fresh token: %d %s", code, body)
	}
	op.SetDown(true)
	held, _ := os.ReadFile(out)
	d.eventuallyLogged(t, 4*life, "/readyz to say the token expired", func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "token:api") && strings.Contains(body, "token")
	})
	if now, _ := os.ReadFile(out); string(now) != string(held) {
		t.Error("the token file changed while the OP was down")
	}
	if !strings.Contains(d.logs.String(), "an access token expired") {
		t.Errorf("the log does not say the token expired:\n%s", d.logs.String())
	}
	for _, s := range []string{secret, string(held)} {
		if strings.Contains(d.logs.String(), s) {
			t.Fatal("the daemon's log carries the client secret or a token")
		}
	}
	op.SetDown(false)
	d.eventuallyLogged(t, 90*time.Second, "a new token once the OP is back", func() bool {
		code, _ := readyz()
		tok, _ := os.ReadFile(out)
		return code == http.StatusOK && string(tok) != string(held)
	})
	tok, _ := os.ReadFile(out)
	if _, err := op.Verify(context.Background(), string(tok)); err != nil {
		t.Fatalf("the token after recovery is refused: %v", err)
	}
}
