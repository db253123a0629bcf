package broker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
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
