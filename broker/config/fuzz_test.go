package config_test

import (
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// FuzzParseConfig: config text never panics the parser; every rejection is a
// usage error, or a format error for input over its size or node bounds.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("output_root: out\nsecrets:\n  db: vault:secret/data/app#password\n  k: envelope:s.enc.yaml#k\noutputs:\n  - path: app.env\n    secrets: [db]\n  - path: t.txt\n    template_text: '{{ secret \"db\" }}'\n    mode: \"0640\"\n"))
	f.Add([]byte(`{"vault": {"address": "https://127.0.0.1:8200", "auth": {"method": "jwt", "role": "r", "jwt_file": "/t"}}, "secrets": {"a": "file:/x"}}`))
	f.Add([]byte("exec:\n  env:\n    DB: db\n  pristine: true\nsecrets:\n  db: file:/x\n"))
	f.Add([]byte("secrets: &a\n  x: file:/x\nkeys: *a\n"))
	f.Add([]byte("secrets_files:\n  s.enc.yaml: {context: {env: prod}}\nsecrets:\n  a: envelope:s.enc.yaml#a\n  b: {ref: \"envelope:b.sbe?name=prod/b\", context: {tier: x}}\nkey_cache: {ttl: 0s}\n"))
	f.Add([]byte("output_root: o\nsecrets:\n  t: file:/t\noutputs:\n  - {path: t, secret: t, mode: \"0777\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := config.Parse(data, "fuzz.yaml", "/nonexistent")
		if k := fail.KindOf(err); err != nil && k != fail.Usage && k != fail.Format {
			t.Fatalf("error class %s: %v", fail.KindOf(err), err)
		}
	})
}
