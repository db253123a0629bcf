package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/oidctest"
	"github.com/secrets-broker/secrets-broker/internal/redact"
)

const clientSecret = "cs-9Kq2-client-secret-value"

// tokenDir writes a config whose tokens: entry api asks op for a token
// with a client secret read from a file, and the outputs given.
func tokenDir(t *testing.T, op *oidctest.Provider, extra string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.pem"), op.CAPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "client_secret"), []byte(clientSecret), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`output_root: out
tokens:
  api:
    issuer: %s
    ca_cert: ca.pem
    client_id: svc
    client_secret: file:client_secret
    scopes: [read]
secrets:
  api_token: token:api
  api_token_expiry: token:api#expiry
`, op.Issuer)+extra), 0o600)
	return dir, cfg
}

func renderOnce(t *testing.T, cfgPath string) error {
	t.Helper()
	cfg, err := config.Source{Path: cfgPath}.Load()
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(cfg)
	defer b.Close()
	_, err = b.RenderOnce(context.Background(), broker.RenderOptions{})
	return err
}

// A token is a secret like any other: a raw token file, dotenv and JSON
// with its expiry, and a template's `token` call all carry the one token
// the OP issued, which the OP's JWKS verifies.
func TestTokenRendersIntoEveryKindOfOutput(t *testing.T) {
	op := oidctest.Start(t, oidctest.Client{ID: "svc", Secret: clientSecret, Scopes: []string{"read"}})
	dir, cfg := tokenDir(t, op, `outputs:
  - path: token
    secret: api_token
  - path: token.env
    secrets: [api_token, api_token_expiry]
  - path: token.json
    format: json
    secrets: [api_token, api_token_expiry]
  - path: header
    template_text: '{{ with token "api" }}Authorization: {{ .TokenType }} {{ .AccessToken }} until {{ .Expiry.Unix }}{{ end }}'
`)
	if err := renderOnce(t, cfg); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	token := read("token")
	claims, err := op.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("the rendered token is not accepted by the OP: %v", err)
	}
	if claims.Subject != "svc" {
		t.Errorf("token subject %q", claims.Subject)
	}
	if op.Issued() != 1 {
		t.Errorf("the OP issued %d tokens for one render; want 1 (one request per entry)", op.Issued())
	}
	var js map[string]string
	if err := json.Unmarshal([]byte(read("token.json")), &js); err != nil || js["api_token"] != token {
		t.Fatalf("token.json: %v %v", js, err)
	}
	expiry, err := time.Parse(time.RFC3339, js["api_token_expiry"])
	if err != nil || time.Until(expiry) < 50*time.Minute || expiry.After(claims.Expiration.AsTime().Add(time.Second)) {
		t.Errorf("expiry %q (%v) does not match the token's hour (exp %v)", js["api_token_expiry"], err, claims.Expiration.AsTime())
	}
	if env := read("token.env"); !strings.Contains(env, "api_token="+token) && !strings.Contains(env, `api_token="`+token+`"`) {
		t.Errorf("token.env lacks the token:\n%s", env)
	}
	if h := read("header"); h != fmt.Sprintf("Authorization: Bearer %s until %d", token, expiry.Unix()) {
		t.Errorf("header = %q", h)
	}
}

// A revoked client or a wrong secret: a clear error naming the entry and
// the IdP's code, the denied exit class, nothing rendered, and neither
// the secret nor any token in the error.
func TestRefusedTokenRendersNothing(t *testing.T) {
	op := oidctest.Start(t)
	dir, cfg := tokenDir(t, op, "outputs:\n  - path: token\n    secret: api_token\n")
	err := renderOnce(t, cfg)
	if err == nil {
		t.Fatal("rendered with a client the OP does not know")
	}
	if fail.KindOf(err) != fail.Denied || !strings.Contains(err.Error(), "tokens.api") || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("error %q (class %s): want denied, naming tokens.api and invalid_client", err, fail.KindOf(err))
	}
	for _, f := range redact.Forms(clientSecret) {
		if strings.Contains(err.Error(), f) {
			t.Fatalf("the error carries the client secret: %v", err)
		}
	}
	if _, statErr := os.Stat(filepath.Join(dir, "out", "token")); !os.IsNotExist(statErr) {
		t.Errorf("a token file was written after a refusal: %v", statErr)
	}
}

// With a restart cache, a restart within the token's lifetime renders the
// token it already had without asking the IdP; a changed request (other
// scopes) asks afresh. The cache holds the token sealed, never in the
// clear.
func TestRestartWithinTheLifetimeAsksNoNewToken(t *testing.T) {
	op := oidctest.Start(t, oidctest.Client{ID: "svc", Secret: clientSecret})
	dir, cfg := tokenDir(t, op, "cache: {path: cache, key: local}\noutputs:\n  - path: token\n    secret: api_token\n")
	brokertest.LocalKey(t, dir)
	if err := renderOnce(t, cfg); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(filepath.Join(dir, "out", "token"))
	os.RemoveAll(filepath.Join(dir, "out"))
	if err := renderOnce(t, cfg); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "out", "token"))
	if op.Issued() != 1 || string(again) != string(first) {
		t.Fatalf("a restart asked the IdP again (%d tokens issued) or rendered another token", op.Issued())
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "cache", "*"))
	if len(entries) == 0 {
		t.Fatal("nothing in the restart cache")
	}
	for _, e := range entries {
		raw, _ := os.ReadFile(e)
		if strings.Contains(string(raw), string(first)) || strings.Contains(string(raw), "svc") {
			t.Fatalf("cache entry %s holds the token or the client id in the clear", e)
		}
	}
	raw, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(raw), "scopes: [read]", "scopes: [read, write]", 1)), 0o600)
	if err := renderOnce(t, cfg); err != nil {
		t.Fatal(err)
	}
	if op.Issued() != 2 {
		t.Errorf("a token asked for with other scopes came from the cache (%d issued)", op.Issued())
	}
}

// An entry that exchanges another entry's token (RFC 8693) is fetched after
// it, with it as the subject token, and renders a token for its own
// audience; circles and auth none without an exchange are refused.
func TestExchangedTokenRendersAfterItsSubject(t *testing.T) {
	op := oidctest.Start(t, oidctest.Client{ID: "svc", Secret: clientSecret, Scopes: []string{"read"}}, oidctest.Client{ID: "gateway", Secret: clientSecret})
	dir, cfg := tokenDir(t, op, `  orders_token: token:orders
outputs:
  - path: orders
    secret: orders_token
`)
	raw, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(raw), "secrets:\n", fmt.Sprintf(`  orders:
    token_url: %s
    ca_cert: ca.pem
    client_id: gateway
    client_secret: file:client_secret
    audience: orders-api
    exchange: {subject_token: "token:api"}
secrets:
`, op.TokenURL()), 1)), 0o600)
	if err := renderOnce(t, cfg); err != nil {
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "out", "orders"))
	claims, err := op.Verify(context.Background(), string(tok))
	if err != nil {
		t.Fatalf("the exchanged token is refused: %v", err)
	}
	if claims.Subject != "svc" || !slices.Contains(claims.Audience, "orders-api") {
		t.Errorf("exchanged token: subject %q audience %v, want svc's token for orders-api", claims.Subject, claims.Audience)
	}
	reqs := op.Requests()
	if len(reqs) != 2 || reqs[0].ClientID != "svc" || reqs[1].Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
		t.Fatalf("want the subject's token first, then one exchange: %+v", reqs)
	}
	for body, want := range map[string]string{
		"tokens:\n  a:\n    token_url: https://i/t\n    client_id: c\n    client_secret: file:s\n    exchange: {subject_token: \"token:b\"}\n  b:\n    token_url: https://i/t\n    client_id: c\n    client_secret: file:s\n    exchange: {subject_token: \"token:a\"}\n": "in a circle",
		"tokens:\n  a:\n    token_url: https://i/t\n    client_id: c\n    auth: none\n":                                              "only for a token exchange",
		"tokens:\n  a:\n    token_url: https://i/t\n    client_id: c\n    auth: none\n    exchange: {subject_token: \"token:zz\"}\n": "token:zz names no entry",
	} {
		_, err := config.Parse([]byte("output_root: o\n"+body), "c.yaml", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}

// An exchanged token in the restart cache is bound to its subject token,
// not to the subject's reference: once tokens.api names another client, a
// restart exchanges the new client's token instead of rendering the old
// exchange.
func TestCachedExchangeFollowsItsSubject(t *testing.T) {
	op := oidctest.Start(t, oidctest.Client{ID: "svc", Secret: clientSecret}, oidctest.Client{ID: "svc2", Secret: clientSecret}, oidctest.Client{ID: "gateway", Secret: clientSecret})
	dir, cfg := tokenDir(t, op, `  orders_token: token:orders
cache: {path: cache, key: local}
outputs:
  - path: orders
    secret: orders_token
`)
	brokertest.LocalKey(t, dir)
	raw, _ := os.ReadFile(cfg)
	s := strings.Replace(string(raw), "    scopes: [read]\n", "", 1)
	s = strings.Replace(s, "secrets:\n", fmt.Sprintf(`  orders:
    token_url: %s
    ca_cert: ca.pem
    client_id: gateway
    client_secret: file:client_secret
    audience: orders-api
    exchange: {subject_token: "token:api"}
secrets:
`, op.TokenURL()), 1)
	os.WriteFile(cfg, []byte(s), 0o600)
	if err := renderOnce(t, cfg); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte(strings.Replace(s, "client_id: svc\n", "client_id: svc2\n", 1)), 0o600)
	os.RemoveAll(filepath.Join(dir, "out"))
	if err := renderOnce(t, cfg); err != nil {
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "out", "orders"))
	claims, err := op.Verify(context.Background(), string(tok))
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "svc2" {
		t.Errorf("orders' token is svc's (subject %q) though tokens.api is now client svc2", claims.Subject)
	}
}
