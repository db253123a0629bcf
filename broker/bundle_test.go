package broker_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
)

func TestBundleConfig(t *testing.T) {
	dir := brokertest.LocalDir(t)
	cfg := loadConfig(t, dir, `output_root: out
secrets:
  crt: envelope:secrets.enc.yaml#api_key
  key: envelope:secrets.enc.yaml#tls_key
outputs:
  - path: tls/tls.crt
    secret: crt
    bundle: tls
  - path: tls/tls.key
    secret: key
    bundle: tls
`)
	b := broker.New(cfg)
	defer b.Close()
	if _, err := b.RenderOnce(t.Context(), broker.RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "out", "tls", "tls.crt")); got != "ak-123" {
		t.Fatalf("crt = %q", got)
	}
	rep, err := b.RenderOnce(t.Context(), broker.RenderOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Changed {
			t.Fatalf("dry run after render says %s would change", r.Path)
		}
	}
	_, err = config.Parse([]byte("output_root: o\nsecrets:\n  a: file:/a\noutputs:\n  - path: x/a\n    secret: a\n    bundle: b\n  - path: y/a\n    secret: a\n    bundle: b\n"), "c.yaml", dir)
	if err == nil || !strings.Contains(err.Error(), "one directory") {
		t.Fatalf("bundle across directories: %v", err)
	}
}
