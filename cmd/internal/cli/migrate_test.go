package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// migrate prints a config the broker validates, and run/validate given an
// HCL config say what it is and point to migrate.
func TestMigrateAndHCLConfigs(t *testing.T) {
	dir := setup(t)
	tmpl := filepath.Join(dir, "app.tmpl")
	os.WriteFile(tmpl, []byte(`{{ with secret "secret/data/app" }}{{ .Data.data.password }}{{ end }}`), 0o600)
	agent := filepath.Join(dir, "agent.hcl")
	os.WriteFile(agent, []byte(`
vault { address = "http://127.0.0.1:8200" }
auto_auth {
  method "approle" {
    config = {
      role_id_file_path   = "role-id"
      secret_id_file_path = "secret-id"
    }
  }
}
template {
  source      = "`+tmpl+`"
  destination = "`+filepath.Join(dir, "out", "app.conf")+`"
}
`), 0o600)
	out := mustRun(t, "", "migrate", "vault-agent", agent)
	if !strings.Contains(out, "method: approle") || !strings.Contains(out, "template: "+tmpl) {
		t.Fatalf("migrate printed:\n%s", out)
	}
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(out), 0o600)
	if r := run(t, "", "validate", "-c", cfg); r.code != 0 || !strings.Contains(r.stdout, "OK") {
		t.Fatalf("validate of the migrated config: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"validate", "-c", agent}, {"run", "--once", "-c", agent}} {
		r := run(t, "", args...)
		wantExit(t, r, 2, "is HCL, not YAML: it looks like a vault-agent config. Convert it with: secrets-broker migrate vault-agent "+agent)
	}
	r := run(t, "", "migrate", "nomad", agent)
	wantExit(t, r, 2, `"nomad" is not vault-agent or consul-template`)
	os.WriteFile(filepath.Join(dir, "bad.hcl"), []byte("template {\n  source = \n"), 0o600)
	r = run(t, "", "migrate", "consul-template", filepath.Join(dir, "bad.hcl"))
	wantExit(t, r, 2, "is not valid HCL")
}
