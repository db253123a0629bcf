package migrate_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/migrate"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Each config, shaped like the examples in Vault's and consul-template's
// documentation, converts to the committed YAML, which the broker loads,
// and every setting without an equivalent is named in a comment.
func TestConvertCoversEveryStanza(t *testing.T) {
	cases := []struct {
		file  string
		from  migrate.From
		want  []string // in the YAML
		notes []string // in the comments
	}{
		{"agent-kubernetes.hcl", migrate.VaultAgent,
			[]string{"method: kubernetes", "mount: kubernetes", "role: web", "service_account_token_file: /var/run/secrets/tokens/vault",
				"address: https://vault.example.com:8200", "ca_cert: /vault/tls/ca.crt", "namespace: team-a", "tls_server_name: vault.example.com",
				"output_root: /etc/app", "path: app.conf", `mode: "0640"`, "template: /vault/templates/app.conf.tmpl", "path: tls/tls.crt",
				"command: [pkill, -HUP, app]", `left_delimiter: '[['`, "static_interval: 10m", "certificate_renewal: 0.75", "path: /vault/agent-cache", "key: local"},
			[]string{"vault.retry", "auto_auth.sink", `auto_auth.method "aws"`, "backup", "listener", "pid_file", "exit_on_retry_failure", "exit_after_auth"}},
		{"agent-approle-exec.hcl", migrate.VaultAgent,
			[]string{"method: approle", "role_id_file: /etc/vault/role-id", "secret_id_file: /etc/vault/secret-id", "secret_id_response_wrapped: true",
				"DB_PASSWORD: vault:secret/data/app#password", "API_KEY: vault:kv1/api#key", "command: [/usr/local/bin/app, --port, \"8080\"]",
				"restart_on_secret_changes: always", "kill_signal: INT"},
			[]string{`env_template "GREETING"`}},
		{"agent-cert.hcl", migrate.VaultAgent,
			[]string{"method: cert", "name: web", "client_cert: /etc/pki/web.crt", "client_key: /etc/pki/web.key", "ca_cert: /etc/pki/vault-ca.pem"},
			nil},
		{"agent-aws.hcl", migrate.VaultAgent,
			[]string{"method: aws", "type: iam", "role: web", "region: eu-west-1", "header_value: vault.example.com", "mount: aws-prod"},
			[]string{"config.access_key: not carried over", "config.secret_key: not carried over", "credential_poll_interval"}},
		{"consul-template.hcl", migrate.ConsulTemplate,
			[]string{"method: token", "token_file: /run/vault/token", "client_cert: /etc/vault/client.crt", "client_key: /etc/vault/client.key",
				"ca_cert: /etc/vault/ca.crt", "tls_server_name: vault.service.consul", "output_root: /etc", "path: app/config.json",
				"path: nginx/conf.d/app.conf", "user: nginx", "timeout: 60s", "min: 5s", "max: 30s", "splay: 5s", "kill_timeout: 15s",
				"reload_signal: HUP", "error_on_missing_key: false", "env_allow: [PATH, HOME, APP_*]", "env_deny: [VAULT_*]", "command: [/usr/bin/app, -config, /etc/app/config.json]"},
			[]string{"consul {", "max_stale", "vault.ssl.verify = false", "vault.retry", "renew_token", "default_lease_duration", "exec.env.custom",
				"log_level", "pid_file", "kill_signal", "reload_signal"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := migrate.Detect(in); got != c.from {
				t.Errorf("Detect = %q, want %q", got, c.from)
			}
			out, err := migrate.Convert(in, c.from, c.file)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", strings.TrimSuffix(c.file, ".hcl")+".yaml")
			if *update {
				os.WriteFile(golden, out, 0o644)
			}
			want, _ := os.ReadFile(golden)
			if string(out) != string(want) {
				t.Errorf("output differs from %s (go test -update to rewrite it):\n%s", golden, out)
			}
			for _, leaked := range []string{"do-not-copy-this-secret-key", "AKIAEXAMPLEEXAMPLE01"} {
				if strings.Contains(string(out), leaked) {
					t.Errorf("a credential in the agent config was copied into the output:\n%s", out)
				}
			}
			if _, err := config.Parse(out, golden, t.TempDir()); err != nil {
				t.Fatalf("the broker does not load the migrated config: %v\n%s", err, out)
			}
			var yamlPart, comments strings.Builder
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "#") {
					comments.WriteString(line + "\n")
				} else {
					yamlPart.WriteString(line + "\n")
				}
			}
			for _, w := range c.want {
				if !strings.Contains(yamlPart.String(), w) {
					t.Errorf("the YAML lacks %q", w)
				}
			}
			for _, n := range c.notes {
				if !strings.Contains(string(out), n) {
					t.Errorf("no comment mentions %q", n)
				}
			}
		})
	}
}

// An unquoted perms = 0600 (HCL reads it as the integer 384) is mode
// "0600", as consul-template and Vault Agent read it; a login migrate
// cannot translate emits no auth section, and says so.
func TestOctalPermsAndUntranslatedLogins(t *testing.T) {
	out, err := migrate.Convert([]byte("vault {\n  address = \"https://vault:8200\"\n}\nauto_auth {\n  method \"gcp\" {\n    mount_path = \"auth/gcp\"\n    config = { role = \"web\" }\n  }\n}\ntemplate {\n  contents = \"x\"\n  destination = \"/etc/app/a\"\n  perms = 0600\n}\ntemplate {\n  contents = \"y\"\n  destination = \"/etc/app/b\"\n  perms = \"0640\"\n}\n"), migrate.VaultAgent, "agent.hcl")
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	if !strings.Contains(text, `mode: "0600"`) || !strings.Contains(text, `mode: "0640"`) {
		t.Errorf("perms not carried as octal:\n%s", text)
	}
	if strings.Contains(text, "auth:") || strings.Contains(text, "mount: gcp") || !strings.Contains(text, `auto_auth.method "gcp": NOT TRANSLATED`) {
		t.Errorf("an untranslated login left an auth section or no note:\n%s", text)
	}
	// validate refuses an auth section without a method.
	if _, err := config.Parse([]byte("vault:\n  auth:\n    mount: gcp\n"), "broker.yaml", t.TempDir()); err == nil || !strings.Contains(err.Error(), "method is required") {
		t.Errorf("an auth section without a method: %v", err)
	}
}

// Destinations in several system directories each keep their directory as
// their own root (never output_root: /), and a template's own wait, in
// either of consul-template's forms, becomes the output's wait; the result
// loads.
func TestSeveralRootsAndTemplateWait(t *testing.T) {
	in := "template {\n  contents = \"a\"\n  destination = \"/etc/nginx/certs/tls.crt\"\n  wait {\n    min = \"2s\"\n    max = \"10s\"\n  }\n}\n" +
		"template {\n  contents = \"b\"\n  destination = \"/etc/nginx/certs/tls.key\"\n}\n" +
		"template {\n  contents = \"c\"\n  destination = \"/var/run/app/env\"\n  wait = \"3s:9s\"\n}\n"
	out, err := migrate.Convert([]byte(in), migrate.ConsulTemplate, "ct.hcl")
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	if strings.Contains(text, "\noutput_root:") {
		t.Errorf("output_root emitted for destinations sharing no directory:\n%s", text)
	}
	for _, want := range []string{"root: /etc/nginx/certs\n    path: tls.crt", "root: /etc/nginx/certs\n    path: tls.key", "root: /var/run/app\n    path: env",
		"wait:\n      min: 2s\n      max: 10s", "wait:\n      min: 3s\n      max: 9s", "each output has its own root"} {
		if !strings.Contains(text, want) {
			t.Errorf("migrated config lacks %q:\n%s", want, text)
		}
	}
	cfg, err := config.Parse(out, "broker.yaml", t.TempDir())
	if err != nil {
		t.Fatalf("the broker does not load it: %v\n%s", err, text)
	}
	if got := cfg.Roots(); !slices.Equal(got, []string{"/etc/nginx/certs", "/var/run/app"}) {
		t.Errorf("roots = %v", got)
	}
	if w := cfg.Outputs[2].Wait; w == nil || w.Min != 3*time.Second || w.Max != 9*time.Second {
		t.Errorf("wait of the third output = %+v", w)
	}
}

func TestDetectLeavesYAMLAlone(t *testing.T) {
	for _, y := range []string{"output_root: out\nsecrets:\n  a: file:x\n", "{}", "", "vault:\n  address: http://x\n"} {
		if got := migrate.Detect([]byte(y)); got != "" {
			t.Errorf("Detect(%q) = %q, want none", y, got)
		}
	}
}

// A Vault Agent config reaching Vault over plain http off loopback is
// converted with a note saying the broker refuses it and what to do.
func TestPlainHTTPAddressIsNoted(t *testing.T) {
	for addr, noted := range map[string]bool{"http://vault.internal:8200": true, "http://127.0.0.1:8200": false, "https://vault.internal:8200": false} {
		out, err := migrate.Convert([]byte("vault {\n  address = \""+addr+"\"\n}\nauto_auth {\n  method \"approle\" {\n    config = { role_id_file_path = \"r\", secret_id_file_path = \"s\" }\n  }\n}\n"), migrate.VaultAgent, "agent.hcl")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(out), "insecure_http: true"); got != noted {
			t.Errorf("%s: note about plain http = %v, want %v:\n%s", addr, got, noted, out)
		}
	}
}

// A Consul function in a migrated template is named with its template and
// line by migrate, not first by a failed render.
func TestMigrateNamesRefusedFunctions(t *testing.T) {
	out, err := migrate.Convert([]byte("template {\n  contents = \"ok\\n{{ key \\\"service/web\\\" }}\"\n  destination = \"/etc/app/a\"\n}\n"), migrate.ConsulTemplate, "ct.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `template "/etc/app/a": template contents of template "/etc/app/a":2:`) || !strings.Contains(string(out), "Consul function") {
		t.Fatalf("the Consul function is not named with its line:\n%s", out)
	}
}
