package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/pgtest"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
)

// compatCorpus holds templates written the way Vault Agent and
// consul-template users write them.
const compatCorpus = "../../../templates/testdata/compat"

// compatDifferences are the templates secrets-broker renders differently
// from consul-template, each with the reason (docs/migrate-from-vault-agent.md)
// and what the broker says instead.
var compatDifferences = map[string]struct{ why, brokerSays string }{
	"39-conditional-default.tmpl": {
		why:        "a missing key is always an error (consul-template's error_on_missing_key = true), so a typo never renders an empty value; 45-optional-key.tmpl shows the form that works in both",
		brokerSays: `map has no entry for key "missing_key"`,
	},
}

// compatVault seeds one Vault dev server with what the corpus reads.
func compatVault(t *testing.T) *vaulttest.Server {
	pg := pgtest.Start(t)
	v := vaulttest.Start(t)
	v.DatabaseRole(t, pg.Port, pg.User, pg.Password, "1h", "2h")
	root := v.Client(t)
	kv := func(path string, data map[string]any) {
		t.Helper()
		if _, err := root.Logical().Write(path, data); err != nil {
			t.Fatalf("write %s: %v", path, err)
		}
	}
	kv("secret/data/app", map[string]any{"data": map[string]any{"user": "app", "password": "first-pass"}})
	kv("secret/data/app", map[string]any{"data": map[string]any{"user": "app", "password": "s3cr3t-pa55", "port": "5432"}})
	kv("secret/data/feature", map[string]any{"data": map[string]any{"enabled": "true", "count": "3", "ratio": "0.5"}})
	kv("secret/data/config", map[string]any{"data": map[string]any{"json": `{"a":1,"b":[10,20],"name":"x"}`, "yaml": "a: 1\nb: [x, y]\n"}})
	kv("secret/data/multi", map[string]any{"data": map[string]any{"pem": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----"}})
	kv("secret/data/lists", map[string]any{"data": map[string]any{"hosts": "a.example.com, b.example.com,c.example.com"}})
	kv("secret/data/types", map[string]any{"data": map[string]any{"number": 42, "flag": true, "nested": map[string]any{"inner": "deep"}, "list": []any{"x", 1, false}}})
	kv("secret/data/services/web", map[string]any{"data": map[string]any{"host": "web.internal", "port": "8080"}})
	kv("secret/data/services/api", map[string]any{"data": map[string]any{"host": "api.internal", "port": "9090"}})
	v.Run(t, "secrets", "enable", "-path=kv1", "-version=1", "kv")
	kv("kv1/legacy", map[string]any{"token": "legacy-token"})
	kv("kv1/services/db", map[string]any{"host": "db.internal"})
	kv("kv1/services/cache", map[string]any{"host": "cache.internal"})
	// A mount templates write to (57-kv1-write-empty.tmpl), apart from the
	// one 56-kv-root-list.tmpl lists.
	v.Run(t, "secrets", "enable", "-path=kvw", "-version=1", "kv")
	v.Run(t, "secrets", "enable", "pki")
	v.Run(t, "write", "pki/root/generate/internal", "common_name=compat-root", "ttl=24h")
	v.Run(t, "write", "pki/roles/web", "allowed_domains=example.com", "allow_subdomains=true", "max_ttl=2h", "key_type=ec", "key_bits=256")
	// A role that issues with no parameters at all (pkiCert "pki/issue/any").
	v.Run(t, "write", "pki/roles/any", "allow_any_name=true", "require_cn=false", "max_ttl=2h", "key_type=ec", "key_bits=256")
	return v
}

// Every template of the corpus renders to the same bytes with
// consul-template v0.41.1 (built from the Go module proxy) and with
// secrets-broker, against one Vault dev server (and PostgreSQL behind its
// database engine).
func TestCompatCorpusAgainstConsulTemplate(t *testing.T) {
	ct, err := vaulttest.ConsulTemplateBinary()
	if err != nil {
		t.Fatalf("consul-template is required for this test and could not be built: %v", err)
	}
	setup(t)
	v := compatVault(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	t.Setenv("COMPAT_REGION", "eu-west-1")
	t.Setenv("COMPAT_APP", "app")
	files, _ := filepath.Glob(filepath.Join(compatCorpus, "*.tmpl"))
	sort.Strings(files)
	if len(files) < 40 {
		t.Fatalf("the corpus has %d templates; it must have at least 40", len(files))
	}
	work := t.TempDir()
	ctDir, brokerDir := filepath.Join(work, "consul-template"), filepath.Join(work, "secrets-broker")
	os.MkdirAll(ctDir, 0o700)
	os.MkdirAll(brokerDir, 0o700)

	// consul-template: one process per template, so one failure names it.
	for _, f := range files {
		src, _ := filepath.Abs(f)
		cmd := exec.Command(ct, "-once", "-vault-addr", v.Addr, "-vault-renew-token=false", "-log-level", "err",
			"-template", src+":"+filepath.Join(ctDir, filepath.Base(f)))
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			t.Errorf("consul-template cannot render %s: %v\n%s", filepath.Base(f), err, errb.String())
		}
	}
	// secrets-broker: one run --once with a --template flag per template.
	args := []string{"run", "--once", "--timeout", "1m", "--vault-addr", v.Addr}
	for _, f := range files {
		src, _ := filepath.Abs(f)
		args = append(args, "--template", src+":"+filepath.Join(brokerDir, filepath.Base(f)))
	}
	r := run(t, "", args...)
	if want := len(compatDifferences); r.code != 0 && !strings.Contains(r.stderr, fmt.Sprintf("%d output(s) failed", want)) {
		t.Errorf("secrets-broker run --once: exit %d:\n%s", r.code, r.stderr)
	}
	same := 0
	for _, f := range files {
		name := filepath.Base(f)
		want, _ := os.ReadFile(filepath.Join(ctDir, name))
		got, err := os.ReadFile(filepath.Join(brokerDir, name))
		if d, ok := compatDifferences[name]; ok {
			if err == nil || !strings.Contains(r.stderr, d.brokerSays) {
				t.Errorf("%s: want secrets-broker to refuse it (%s), saying %q; stderr:\n%s", name, d.why, d.brokerSays, r.stderr)
			}
			t.Logf("%s differs by design: %s", name, d.why)
			continue
		}
		if err != nil {
			t.Errorf("%s: secrets-broker rendered nothing", name)
			continue
		}
		if len(bytes.TrimSpace(want)) == 0 || bytes.Contains(want, []byte("<no value>")) {
			t.Errorf("%s: consul-template rendered %q: the template compares nothing", name, want)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs:\nconsul-template:\n%s\nsecrets-broker:\n%s", name, want, got)
			continue
		}
		same++
	}
	t.Logf("%d of %d templates rendered byte for byte as consul-template v0.41.1 renders them", same, len(files))

	// The templates that differ by design render as consul-template's do
	// once their output opts in (error_on_missing_key: false).
	for name := range compatDifferences {
		src, _ := filepath.Abs(filepath.Join(compatCorpus, name))
		cfg := filepath.Join(work, "optin.yaml")
		os.WriteFile(cfg, []byte("output_root: "+filepath.Join(work, "optin")+"\noutputs:\n  - path: "+name+"\n    template: "+src+"\n    error_on_missing_key: false\n"), 0o600)
		if r := run(t, "", "run", "--once", "--timeout", "1m", "--vault-addr", v.Addr, "--config", cfg); r.code != 0 {
			t.Errorf("%s with error_on_missing_key: false: exit %d\n%s", name, r.code, r.stderr)
			continue
		}
		want, _ := os.ReadFile(filepath.Join(ctDir, name))
		got, _ := os.ReadFile(filepath.Join(work, "optin", name))
		if !bytes.Equal(got, want) {
			t.Errorf("%s with error_on_missing_key: false differs:\nconsul-template:\n%s\nsecrets-broker:\n%s", name, want, got)
		}
	}
}
