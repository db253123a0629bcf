package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

func TestSecretRefForms(t *testing.T) {
	good := map[string]string{
		"vault:secret/data/app#password":        "vault",
		"vault:database/creds/app":              "vault",
		"vault:pki/issue/web?common_name=a.b.c": "vault",
		"envelope:secrets.enc.yaml#db_password": "envelope",
		"envelope:one.sbe":                      "envelope",
		"file:/run/secrets/x":                   "file",
	}
	for s, scheme := range good {
		r, err := config.ParseSecretRef(s)
		if err != nil || r.Scheme != scheme || r.String() != s {
			t.Errorf("ParseSecretRef(%q) = %+v, %v", s, r, err)
		}
	}
	for _, bad := range []string{"", "secret/data/app", "gcp:x", "vault:", "vault:a//b", "envelope:#x", "envelope:f#", "file:a#b"} {
		_, err := config.ParseSecretRef(bad)
		if err == nil || !strings.Contains(err.Error(), "A secret reference is one of") || fail.KindOf(err) != fail.Usage {
			t.Errorf("ParseSecretRef(%q) = %v; want an error showing the expected form", bad, err)
		}
	}
}

// The cert and aws logins load with what they need: the certificate from
// the vault section or the method's own, the IAM type by default.
func TestCertAndAWSLoginsLoad(t *testing.T) {
	t.Setenv("VAULT_CLIENT_CERT", "")
	for _, text := range []string{
		"vault:\n  client_cert: c.pem\n  client_key: k.pem\n  auth:\n    method: cert\n    name: web\n",
		"vault:\n  auth:\n    method: cert\n    client_cert: c.pem\n    client_key: k.pem\n",
		"vault:\n  auth:\n    method: aws\n    role: web\n    region: eu-west-1\n    header_value: vault.example.com\n",
		"vault:\n  auth:\n    method: aws\n    type: iam\n",
	} {
		if _, err := config.Parse([]byte(text), "broker.yaml", t.TempDir()); err != nil {
			t.Errorf("Parse(%q) = %v", text, err)
		}
	}
}

func TestConfigStrictWithLines(t *testing.T) {
	cases := map[string]string{
		"output_root: out\nsecrets:\n  a: file:/x\noutputs:\n  - path: a.env\n    formt: dotenv\n": `line 6: unknown key "formt" in an output; did you mean "format"?`,
		"secrets:\n  a: nope\n":                                                                           "line 2",
		"secrets:\n  a: file:/x\n  a: file:/y\n":                                                          "declared twice",
		"secrets:\n  9bad: file:/x\n":                                                                     "must start with a letter",
		"secrets:\n  a" + strings.Repeat("b", 128) + ": file:/x\n":                                        "(at most 128)",
		"output_root: o\noutputs:\n  - path: x\n    bundle: " + strings.Repeat("b", 65) + "\n":            "(at most 64)",
		"outputs:\n  - path: x\n":                                                                         "output_root is required",
		"output_root: o\noutputs:\n  - path: ../x\n":                                                      "line 3",
		"output_root: o\noutputs:\n  - path: /etc/x\n":                                                    "must be relative",
		"output_root: o\noutputs:\n  - path: x\n    secret: nope\n":                                       `secret "nope" is not declared`,
		"output_root: o\noutputs:\n  - path: x\n    format: toml\n":                                       "format",
		"output_root: o\noutputs:\n  - path: x\n    mode: rw\n":                                           "octal",
		"output_root: o\noutputs:\n  - path: x\n  - path: ./x\n":                                          "also written",
		"output_root: o\noutputs:\n  - path: b/x\n  - path: x\n    root: o/b\n":                           "also written",
		"outputs:\n  - path: x\n    root: /etc/a\n  - path: y\n":                                          "output_root is required when an output has no root",
		"output_root: o\noutputs:\n  - path: x\n    wait: {max: 1s}\n":                                    "wait needs min > 0",
		"output_root: o\noutputs:\n  - path: x\n    wait: {min: 2s, max: 1s}\n":                           "wait needs min > 0 and max >= min",
		"output_root: o\noutputs:\n  - {path: x, bundle: b}\n  - {path: y, bundle: b, root: p}\n":         "must be in one directory",
		"output_root: o\noutputs:\n  - {path: x, bundle: b, wait: {min: 1s}}\n  - {path: y, bundle: b}\n": "must have the same wait",
		"vault:\n  auth:\n    method: radius\n":                                                           "not token, approle",
		"vault:\n  auth:\n    method: ldap\n":                                                             "ldap needs username and password_file",
		"vault:\n  auth:\n    method: approle\n":                                                          "role_id_file",
		"vault:\n  auth:\n    method: cert\n":                                                             "cert needs a client certificate",
		"vault:\n  auth:\n    method: cert\n    client_cert: c.pem\n":                                     "client_cert and client_key together",
		"vault:\n  auth:\n    method: aws\n    type: ec2\n":                                               "only iam is",
		"vault:\n  auth:\n    method: aws\n    secret_key: x\n":                                           "do not belong in the broker's config",
		"vault:\n  auth:\n    method: jwt\n    role: r\n    jwt_file: j\n    region: x\n":                 "are for method aws",
		"vault:\n  auth:\n    method: token\n    name: web\n":                                             "are for method cert",
		"exec:\n  env:\n    BAD-NAME: a\n":                                                                "not a valid environment",
		"{\"secrets\": {\"a\": \"file:/x\"}, \"bogus\": 1}":                                               `unknown key "bogus" at the top level`,
	}
	for text, want := range cases {
		_, err := config.Parse([]byte(text), "broker.yaml", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "broker.yaml") {
			t.Errorf("Parse(%q) = %v; want %q", text, err, want)
		}
	}
	// The longest names are accepted.
	if _, err := config.Parse([]byte("output_root: o\nsecrets:\n  a"+strings.Repeat("b", 127)+": file:/x\noutputs:\n  - path: x\n    bundle: "+strings.Repeat("b", 64)+"\n"), "broker.yaml", t.TempDir()); err != nil {
		t.Errorf("a 128-byte secret name and a 64-byte bundle: %v", err)
	}
	// consul-template's string forms of wait.
	if c, err := config.Parse([]byte("output_root: o\noutputs:\n  - {path: x, wait: \"5s:10s\"}\n  - {path: y, wait: 3s}\nrefresh: {wait: \"1s:4s\"}\n"), "broker.yaml", t.TempDir()); err != nil {
		t.Errorf("wait strings: %v", err)
	} else if w := c.Outputs[0].Wait; w.Min.String() != "5s" || w.Max.String() != "10s" || c.Outputs[1].Wait.Min.String() != "3s" || c.Refresh.Wait.Max.String() != "4s" {
		t.Errorf("wait strings read as %+v %+v %+v", *w, *c.Outputs[1].Wait, c.Refresh.Wait)
	}
	// Outputs that each have a root need no output_root.
	if _, err := config.Parse([]byte("outputs:\n  - {path: tls.crt, root: /etc/nginx/certs}\n  - {path: env, root: /var/run/app}\n"), "broker.yaml", t.TempDir()); err != nil {
		t.Errorf("outputs with their own roots: %v", err)
	}
	// JSON is accepted.
	c, err := config.Parse([]byte(`{"output_root": "o", "secrets": {"a": "file:/x", "b": "vault:secret/data/b#k"}, "outputs": [{"path": "x.env"}]}`), "c.json", "/tmp")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Secrets) != 2 || c.Secrets[0].Name != "a" || c.Outputs[0].Format != "dotenv" {
		t.Fatalf("parsed %+v", c)
	}
}

func TestSecretFlags(t *testing.T) {
	c := &config.Config{}
	if err := c.AddSecretFlags([]string{"DB=vault:secret/data/db#pw", "TOKEN=file:/t"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"DB", "X=nope", "DB=file:/again", "1X=file:/x"} {
		if err := c.AddSecretFlags([]string{bad}); err == nil {
			t.Errorf("--secret %q accepted", bad)
		}
	}
}

// A secret declared on the command line reaches exec even when the config
// maps exec's environment with exec.env (it was left out unseen: a GitHub
// Action given such a config exported a runner variable of that name).
func TestSecretFlagsJoinExecEnv(t *testing.T) {
	c, err := config.Parse([]byte("secrets:\n  db: file:/db\nexec:\n  env:\n    DB_PASSWORD: db\n"), "b.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddSecretFlags([]string{"API_KEY=file:/k"}); err != nil {
		t.Fatal(err)
	}
	if c.Exec.Env["API_KEY"] != "API_KEY" || c.Exec.Env["DB_PASSWORD"] != "db" || len(c.Exec.Env) != 2 {
		t.Errorf("exec.env after --secret API_KEY: %v", c.Exec.Env)
	}
	for flag, want := range map[string]string{"DB_PASSWORD=file:/x": "exec.env already sets DB_PASSWORD", "a.b=file:/x": "not an environment variable name"} {
		if err := c.AddSecretFlags([]string{flag}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("--secret %s: %v, want %q", flag, err, want)
		}
	}
}

// Unknown keys name where they are and the closest known key, never a Go
// type name.
func TestUnknownKeysSuggestTheClosestKey(t *testing.T) {
	_, err := config.Parse([]byte("vault:\n  adress: x\n  auth:\n    methd: token\noutput_rot: out\noutputs:\n  - path: a\n    secrt: x\nexec:\n  kill_timout: 5s\nzzzzzz: 1\n"), "b.yaml", t.TempDir())
	if err == nil {
		t.Fatal("unknown keys accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`line 2: unknown key "adress" under vault; did you mean "address"?`,
		`line 4: unknown key "methd" under vault.auth; did you mean "method"?`,
		`line 5: unknown key "output_rot" at the top level; did you mean "output_root"?`,
		`line 8: unknown key "secrt" in an output; did you mean "secret"?`,
		`line 10: unknown key "kill_timout" under exec; did you mean "kill_timeout"?`,
		`line 11: unknown key "zzzzzz" at the top level (known keys: vault, keys,`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	for _, goName := range []string{"Vault", "Auth", "broker.", "config.", "not found in"} {
		if strings.Contains(msg, goName) {
			t.Errorf("message shows %q:\n%s", goName, msg)
		}
	}
}

// A bad reference in a config file shows the reference help as written, one
// form per line, not flattened into one line.
func TestBadReferenceHelpKeepsItsLines(t *testing.T) {
	_, err := config.Parse([]byte("secrets:\n  a: vualt:secret/x\noutputs:\n  - path: a.env\n"), "broker.yaml", t.TempDir())
	if err == nil {
		t.Fatal("a bad scheme was accepted")
	}
	msg := err.Error()
	if !strings.Contains(msg, "line 2: secret \"a\"") || !strings.Contains(msg, "\n  vault:PATH") || !strings.Contains(msg, "\n  file:PATH") || strings.Contains(msg, "; vault:PATH") {
		t.Fatalf("want the help one form per line, got:\n%s", msg)
	}
}

// Vault Agent's and consul-template's names for the same settings are
// accepted; one setting under both names is an error.
func TestVaultAgentNamesAreAccepted(t *testing.T) {
	cfg, err := config.Parse([]byte(`vault:
  auth:
    method: approle
    mount_path: auth/approle-ci
    role_id_file_path: role-id
    secret_id_file_path: secret-id
refresh:
  static_secret_render_interval: 10m
output_root: out
outputs:
  - path: a.conf
    contents: "{{ secret \"secret/data/a\" }}"
    perms: "0640"
  - path: b.conf
    source: b.tmpl
`), "broker.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Vault.Auth
	if a.Mount != "approle-ci" || a.RoleIDFile != "role-id" || a.SecretIDFile != "secret-id" || cfg.Refresh.StaticInterval != 10*time.Minute ||
		cfg.Outputs[0].TemplateText == "" || cfg.Outputs[0].Mode != "0640" || cfg.Outputs[1].Template != "b.tmpl" {
		t.Fatalf("names not folded: auth %+v refresh %+v outputs %+v", a, cfg.Refresh, cfg.Outputs)
	}
	_, err = config.Parse([]byte("output_root: out\noutputs:\n  - path: a.conf\n    mode: \"0600\"\n    perms: \"0640\"\n    template_text: x\n"), "broker.yaml", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), `output "a.conf": mode and perms are the same setting; give one`) {
		t.Fatalf("both names: %v", err)
	}
}
