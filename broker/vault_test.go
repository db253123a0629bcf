package broker_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
	"github.com/secrets-broker/secrets-broker/internal/oidctest"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// One render against a real Vault fills every kind of output: a declared
// KV field in dotenv, a template reading KV, and a template whose path is
// computed from another secret (found by rendering, as consul-template
// does). With a restart cache, a second broker started while Vault is
// gone renders the same files from the cache alone.
func TestRenderOnceFromVaultThenFromTheCacheWhileVaultIsGone(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw-1")
	v.Run(t, "kv", "put", "secret/pointer", "target=app")
	dir := t.TempDir()
	brokertest.LocalKey(t, dir)
	t.Setenv("VAULT_TOKEN", "")
	os.WriteFile(filepath.Join(dir, "token"), []byte(v.Token), 0o600)
	os.WriteFile(filepath.Join(dir, "kv.tmpl"), []byte(`{{ with secret "secret/data/app" }}{{ .Data.data.password }}{{ end }}`), 0o600)
	os.WriteFile(filepath.Join(dir, "computed.tmpl"), []byte(`{{ with secret (printf "secret/data/%s" (secret "secret/data/pointer").Data.data.target) }}{{ .Data.data.password }}{{ end }}`), 0o600)
	cfgPath := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`vault:
  address: %s
  auth: {method: token, token_file: token}
cache: {path: cache, key: local, max_stale: 1h}
output_root: out
secrets:
  db: vault:secret/data/app#password
outputs:
  - path: app.env
    secrets: [db]
  - path: kv.txt
    template: kv.tmpl
  - path: computed.txt
    template: computed.tmpl
`, v.Addr)), 0o600)
	want := map[string]string{"app.env": "db=\"pw-1\"\n", "kv.txt": "pw-1", "computed.txt": "pw-1"}
	check := func(when string) {
		t.Helper()
		for name, body := range want {
			got, err := os.ReadFile(filepath.Join(dir, "out", name))
			if err != nil || string(got) != body {
				t.Errorf("%s: %s = %q (%v), want %q", when, name, got, err, body)
			}
		}
	}
	render := func() (*broker.Broker, error) {
		cfg, err := config.Source{Path: cfgPath}.Load()
		if err != nil {
			t.Fatal(err)
		}
		b := broker.New(cfg)
		_, err = b.RenderOnce(context.Background(), broker.RenderOptions{})
		return b, err
	}

	b, err := render()
	if err != nil {
		t.Fatal(err)
	}
	check("from Vault")
	if !b.Connected() {
		t.Error("the broker that read Vault says it is not connected")
	}
	computed, err := vault.ParseRef("secret/data/app")
	if err != nil {
		t.Fatal(err)
	}
	computed.Computed = true
	if shown := b.ShownRequest(computed); !strings.HasPrefix(shown, "computed:") || strings.Contains(shown, "app") {
		t.Errorf("a computed request is shown as %q, want computed:HASH without the path", shown)
	}
	b.Close()
	entries, _ := filepath.Glob(filepath.Join(dir, "cache", "*.sbe"))
	if len(entries) != 2 {
		t.Fatalf("the restart cache holds %v; want one entry per distinct Vault request (secret/data/app, read three ways, and the pointer)", entries)
	}

	os.RemoveAll(filepath.Join(dir, "out"))
	v.Stop()
	b, err = render()
	if err != nil {
		t.Fatalf("a restart while Vault is gone did not render from the cache: %v", err)
	}
	b.Close()
	check("from the cache, Vault gone")
}

// A Vault identity token (identity/oidc/token/ROLE) is a token source: read
// with the broker's AppRole login, rendered like any token with its ttl as
// the expiry, and valid by Vault's own introspection.
func TestVaultIdentityTokenIsATokenSource(t *testing.T) {
	v := vaulttest.Start(t)
	root := v.Client(t)
	if _, err := root.Logical().Write("sys/policies/acl/idtoken", map[string]any{"policy": `path "identity/oidc/token/app" { capabilities = ["read"] }`}); err != nil {
		t.Fatal(err)
	}
	v.Run(t, "write", "identity/oidc/key/broker", "allowed_client_ids=*", "rotation_period=24h", "verification_ttl=24h")
	v.Run(t, "write", "identity/oidc/role/app", "key=broker", "ttl=90s")
	v.Run(t, "auth", "enable", "approle")
	v.Run(t, "write", "auth/approle/role/app", "token_policies=idtoken", "token_ttl=1h")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "role-id"), []byte(strings.TrimSpace(v.Run(t, "read", "-field=role_id", "auth/approle/role/app/role-id"))), 0o600)
	os.WriteFile(filepath.Join(dir, "secret-id"), []byte(strings.TrimSpace(v.Run(t, "write", "-f", "-field=secret_id", "auth/approle/role/app/secret-id"))), 0o600)
	t.Setenv("VAULT_TOKEN", "")
	cfgPath := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`vault:
  address: %s
  auth: {method: approle, role_id_file: role-id, secret_id_file: secret-id}
output_root: out
tokens:
  vault_id: {vault_identity: app}
secrets:
  id_token: token:vault_id
  id_token_expiry: token:vault_id#expiry
outputs:
  - path: id_token
    secret: id_token
  - path: id.json
    format: json
    secrets: [id_token, id_token_expiry]
`, v.Addr)), 0o600)
	if err := renderOnce(t, cfgPath); err != nil {
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "out", "id_token"))
	resp, err := root.Logical().Write("identity/oidc/introspect", map[string]any{"token": string(tok)})
	if err != nil || resp == nil || resp.Data["active"] != true {
		t.Fatalf("Vault says the rendered identity token is not active: %v %v", resp, err)
	}
	js, _ := os.ReadFile(filepath.Join(dir, "out", "id.json"))
	if !strings.Contains(string(js), `"id_token_expiry"`) {
		t.Fatalf("id.json: %s", js)
	}
	var got map[string]string
	json.Unmarshal(js, &got)
	expiry, err := time.Parse(time.RFC3339, got["id_token_expiry"])
	if left := time.Until(expiry); err != nil || left < 60*time.Second || left > 91*time.Second {
		t.Errorf("expiry %q is not the role's 90 s ttl from now (%v, %v)", got["id_token_expiry"], left, err)
	}
	if _, err := config.Parse([]byte("output_root: o\ntokens:\n  a: {vault_identity: app, client_id: x}\n"), "c.yaml", dir); err == nil || !strings.Contains(err.Error(), "takes no other setting") {
		t.Errorf("vault_identity with client_id: %v", err)
	}
}

// tls_client_auth with a certificate Vault PKI issues: client_cert and
// client_key are two fields of one pki/issue request (one certificate),
// and the OP accepts the client by the CA that issued it.
func TestClientCertificateFromVaultPKI(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "secrets", "enable", "pki")
	v.Run(t, "write", "pki/root/generate/internal", "common_name=test-root", "ttl=24h")
	v.Run(t, "write", "pki/roles/svc", "allow_any_name=true", "client_flag=true", "server_flag=false", "ttl=1h")
	caPEM := v.Run(t, "read", "-field=certificate", "pki/cert/ca")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatalf("Vault's CA does not parse: %q", caPEM)
	}
	op := oidctest.Start(t, oidctest.Client{ID: "mtls-svc", CertCAs: pool, CertCN: "mtls-svc"})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(v.Token), 0o600)
	os.WriteFile(filepath.Join(dir, "ca.pem"), op.CAPEM, 0o600)
	t.Setenv("VAULT_TOKEN", "")
	cfgPath := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`vault:
  address: %s
  auth: {method: token, token_file: token}
output_root: out
tokens:
  api:
    token_url: %s
    ca_cert: ca.pem
    client_id: mtls-svc
    auth: tls_client_auth
    client_cert: vault:pki/issue/svc?common_name=mtls-svc#certificate
    client_key: vault:pki/issue/svc?common_name=mtls-svc#private_key
secrets:
  api_token: token:api
outputs:
  - path: token
    secret: api_token
`, v.Addr, op.TokenURL())), 0o600)
	if err := renderOnce(t, cfgPath); err != nil {
		t.Fatal(err)
	}
	tok, _ := os.ReadFile(filepath.Join(dir, "out", "token"))
	if claims, err := op.Verify(context.Background(), string(tok)); err != nil || claims.Subject != "mtls-svc" {
		t.Fatalf("the token got with Vault's certificate: %v %v", claims, err)
	}
	reqs := op.Requests()
	if len(reqs) != 1 || reqs[0].Method != "tls_client_auth" {
		t.Fatalf("the OP saw %+v, want one tls_client_auth request", reqs)
	}
}
