package broker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
)

const localConfig = `output_root: out
secrets:
  db_password: envelope:secrets.enc.yaml#db_password
  api_key: envelope:secrets.enc.yaml#api_key
  tls_key: envelope:secrets.enc.yaml#tls_key
  token: file:token
outputs:
  - path: app.env
    format: dotenv
    secrets: [db_password, api_key]
  - path: app.conf
    template: app.tmpl
    mode: "0640"
  - path: tls/tls.key
    secret: tls_key
  - path: all.json
    format: json
    secrets: [api_key, token]
`

func loadConfig(t *testing.T, dir, text string) *config.Config {
	t.Helper()
	p := filepath.Join(dir, "broker.yaml")
	os.WriteFile(p, []byte(text), 0o600)
	c, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRenderOnceLocal(t *testing.T) {
	ctx := context.Background()
	dir := brokertest.LocalDir(t)
	cfg := loadConfig(t, dir, localConfig)
	b := broker.New(cfg)
	defer b.Close()

	rep, err := b.RenderOnce(ctx, broker.RenderOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if !r.Changed {
			t.Fatalf("dry run says %s unchanged before any render", r.Path)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "app.env")); !os.IsNotExist(err) {
		t.Fatal("dry run wrote a file")
	}
	rep, err = b.RenderOnce(ctx, broker.RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if got := read(t, filepath.Join(out, "app.env")); got != "db_password=\"p\\\"w\\$1\"\napi_key=\"ak-123\"\n" {
		t.Fatalf("app.env = %q", got)
	}
	if got := read(t, filepath.Join(out, "app.conf")); got != "db=p\"w$1\ntoken=file-token\n" {
		t.Fatalf("app.conf = %q", got)
	}
	if got := read(t, filepath.Join(out, "tls/tls.key")); !strings.HasPrefix(got, "-----BEGIN KEY-----\nabc") {
		t.Fatalf("tls.key = %q", got)
	}
	if got := read(t, filepath.Join(out, "all.json")); got != "{\n  \"api_key\": \"ak-123\",\n  \"token\": \"file-token\"\n}\n" {
		t.Fatalf("all.json = %q", got)
	}
	info, _ := os.Stat(filepath.Join(out, "app.conf"))
	if info.Mode().Perm() != 0o640 {
		t.Fatalf("app.conf mode %o", info.Mode().Perm())
	}
	info, _ = os.Stat(filepath.Join(out, "app.env"))
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("default mode %o", info.Mode().Perm())
	}
	// A second render changes nothing.
	rep, err = b.RenderOnce(ctx, broker.RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Changed {
			t.Fatalf("%s rewritten with unchanged content", r.Path)
		}
	}
}

// A failing output is named, leaves its previous file intact, and does not
// stop the others.
func TestRenderOnceFailureKeepsPrevious(t *testing.T) {
	ctx := context.Background()
	dir := brokertest.LocalDir(t)
	b := broker.New(loadConfig(t, dir, localConfig))
	if _, err := b.RenderOnce(ctx, broker.RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// The template now references a missing field of a Vault-less value;
	// the token file disappears.
	os.WriteFile(filepath.Join(dir, "app.tmpl"), []byte("db={{ secret \"db_password\" | base64Decode }}\n"), 0o600)
	os.Remove(filepath.Join(dir, "token"))
	b = broker.New(loadConfig(t, dir, localConfig))
	defer b.Close()
	rep, err := b.RenderOnce(ctx, broker.RenderOptions{})
	if err == nil {
		t.Fatal("want an error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "token") || strings.Contains(msg, `p"w$1`) {
		t.Fatalf("error %q", msg)
	}
	failed := map[string]bool{}
	for _, r := range rep.Results {
		failed[r.Path] = r.Err != nil
	}
	if !failed["app.conf"] || !failed["all.json"] || failed["app.env"] || failed["tls/tls.key"] {
		t.Fatalf("failed outputs: %v", failed)
	}
	if got := read(t, filepath.Join(dir, "out", "app.conf")); got != "db=p\"w$1\ntoken=file-token\n" {
		t.Fatalf("previous app.conf lost: %q", got)
	}
	// The template error is redacted.
	for _, r := range rep.Results {
		if r.Err != nil && strings.Contains(r.Err.Error(), `p"w$1`) {
			t.Fatalf("secret in error: %v", r.Err)
		}
	}
}

// Outputs with their own roots are written beneath them, each kept inside
// its root: the same path in two roots is two files, and a symlink in a
// root pointing out of it is refused, as beneath output_root.
func TestRenderOnceSeveralRoots(t *testing.T) {
	ctx := context.Background()
	dir := brokertest.LocalDir(t)
	cfg := loadConfig(t, dir, "secrets:\n  token: file:token\n  api_key: envelope:secrets.enc.yaml#api_key\noutputs:\n"+
		"  - {path: key, root: etc/nginx/certs, secret: api_key}\n  - {path: key, root: var/run/app, secret: token}\n")
	b := broker.New(cfg)
	defer b.Close()
	rep, err := b.RenderOnce(ctx, broker.RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "etc/nginx/certs/key")); got != "ak-123" {
		t.Errorf("etc/nginx/certs/key = %q", got)
	}
	if got := read(t, filepath.Join(dir, "var/run/app/key")); got != "file-token" {
		t.Errorf("var/run/app/key = %q", got)
	}
	if len(rep.Results) != 2 || rep.Results[0].Path != filepath.Join(dir, "etc/nginx/certs/key") {
		t.Errorf("results name outputs by root and path: %+v", rep.Results)
	}
	os.Remove(filepath.Join(dir, "var/run/app/key"))
	os.Symlink("../../../token-copy", filepath.Join(dir, "var/run/app/key"))
	cfg = loadConfig(t, dir, "secrets:\n  token: file:token\noutputs:\n  - {path: key, root: var/run/app, secret: token, allow_symlink: true}\n")
	b2 := broker.New(cfg)
	defer b2.Close()
	if _, err := b2.RenderOnce(ctx, broker.RenderOptions{}); err == nil || !strings.Contains(err.Error(), "outside output_root") {
		t.Errorf("a symlink out of an output's own root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "token-copy")); err == nil {
		t.Error("written through a symlink out of the output's root")
	}
}
