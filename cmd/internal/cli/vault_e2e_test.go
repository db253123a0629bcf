package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
)

// End to end against a real Vault dev server: render --once, validate,
// dry-run, exec, and Vault Agent compatibility.

const compatTemplate = `{{- with secret "secret/data/app" -}}
user={{ .Data.data.user }}
password={{ .Data.data.password }}
json={{ .Data.data | toJSON }}
b64={{ .Data.data.password | base64Encode }}
{{ range $k, $v := .Data.data }}{{ $k }}:{{ $v }};{{ end }}
version={{ .Data.metadata.version }}
{{- end }}
{{ with secret "kv1/legacy" }}legacy={{ .Data.token }}{{ end }}
{{ with secret "secret/data/multi" }}{{ .Data.data.pem | indent 2 }}{{ end }}
`

func vaultFixture(t *testing.T) (*vaulttest.Server, string) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "user=app", "password=pa$$w\"rd", "port=5432")
	v.Run(t, "secrets", "enable", "-path=kv1", "-version=1", "kv")
	v.Run(t, "kv", "put", "kv1/legacy", "token=legacy-token")
	v.Run(t, "kv", "put", "secret/multi", "pem=-----BEGIN-----\nabc\n-----END-----")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(v.Token), 0o600)
	os.WriteFile(filepath.Join(dir, "app.tmpl"), []byte(compatTemplate), 0o600)
	return v, dir
}

func brokerConfig(v *vaulttest.Server, extra string) string {
	return fmt.Sprintf(`vault:
  address: %s
  auth:
    method: token
    token_file: token
output_root: out
secrets:
  db_password: vault:secret/data/app#password
  legacy: vault:kv1/legacy#token
outputs:
  - path: app.conf
    template: app.tmpl
  - path: db.env
    format: dotenv
%s`, v.Addr, extra)
}

func TestRunOnceAgainstVault(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	v, dir := vaultFixture(t)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(brokerConfig(v, "")), 0o600)

	r := run(t, "", "validate", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stdout, "OK") || !strings.Contains(r.stdout, "3 Vault path(s)") {
		t.Fatalf("validate: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "", "render", "--dry-run", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "would change") || strings.Contains(r.stderr, "pa$$w") {
		t.Fatalf("dry run: %d %s", r.code, r.stderr)
	}
	mustRun(t, "", "run", "--once", "--config", cfg)
	conf := readFile(t, filepath.Join(dir, "out", "app.conf"))
	if !strings.Contains(conf, "password=pa$$w\"rd") || !strings.Contains(conf, "legacy=legacy-token") || !strings.Contains(conf, "  -----BEGIN-----\n  abc") {
		t.Fatalf("app.conf:\n%s", conf)
	}
	if env := readFile(t, filepath.Join(dir, "out", "db.env")); env != "db_password=\"pa\\$\\$w\\\"rd\"\nlegacy=\"legacy-token\"\n" {
		t.Fatalf("db.env = %q", env)
	}
	r = run(t, "", "run", "--once", "--config", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "unchanged") || strings.Contains(r.stderr, "written") {
		t.Fatalf("second run: %s", r.stderr)
	}

	// A bad field: named, no value, previous file intact, non-zero exit.
	os.WriteFile(cfg, []byte(strings.Replace(brokerConfig(v, ""), "app#password", "app#passwd", 1)), 0o600)
	r = run(t, "", "run", "--once", "--config", cfg)
	wantExit(t, r, 6, `no field "passwd"`)
	if strings.Contains(r.stderr, "pa$$w") || !strings.Contains(r.stderr, "db.env") {
		t.Fatalf("stderr: %s", r.stderr)
	}
	if env := readFile(t, filepath.Join(dir, "out", "db.env")); !strings.Contains(env, "legacy-token") {
		t.Fatal("previous db.env lost")
	}

	// Vault down: run --once retries for --timeout, then fails naming the outputs.
	os.WriteFile(cfg, []byte(brokerConfig(v, "")), 0o600)
	v.Stop()
	start := time.Now()
	r = run(t, "", "run", "--once", "--timeout", "2s", "--config", cfg)
	if r.code == 0 || time.Since(start) > 60*time.Second {
		t.Fatalf("run --once with Vault down: exit %d after %s", r.code, time.Since(start))
	}
	if !strings.Contains(r.stderr, "cannot reach Vault") {
		t.Fatalf("stderr: %s", r.stderr)
	}
}

func TestExecAgainstVault(t *testing.T) {
	setup(t)
	v, _ := vaultFixture(t)
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	r := run(t, "", "exec", "--secret", "PW=vault:secret/data/app#password", "--redact-output", "--", "/bin/sh", "-c", `echo "pw=$PW token=${VAULT_TOKEN:-none}"; test "$PW" = 'pa$$w"rd'`)
	if r.code != 0 || r.stdout != "pw=[redacted] token=none\n" {
		t.Fatalf("exec: %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "", "exec", "--secret", "PW=vault:secret/data/nope#password", "--", "/bin/true")
	wantExit(t, r, 6, "secret/data/nope")
}

// The same template rendered by Vault Agent 1.21.0 (exit_after_auth) and by
// secrets-broker against the same Vault must be byte-identical.
func TestVaultAgentCompatibility(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	v, dir := vaultFixture(t)
	agentOut := filepath.Join(dir, "agent-out", "app.conf")
	os.MkdirAll(filepath.Dir(agentOut), 0o700)
	hcl := fmt.Sprintf(`
vault { address = %q }
auto_auth {
  method "token_file" {
    config = { token_file_path = %q }
  }
}
template_config { exit_on_retry_failure = true }
template {
  source      = %q
  destination = %q
}
exit_after_auth = true
`, v.Addr, filepath.Join(dir, "token"), filepath.Join(dir, "app.tmpl"), agentOut)
	runVaultAgent(t, v, dir, hcl)
	want := readFile(t, agentOut)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(brokerConfig(v, "")), 0o600)
	mustRun(t, "", "run", "--once", "--config", cfg)
	got := readFile(t, filepath.Join(dir, "out", "app.conf"))
	if got != want {
		t.Fatalf("outputs differ\nvault agent:\n%q\nsecrets-broker:\n%q", want, got)
	}
	if !strings.Contains(got, "password=") {
		t.Fatalf("compat template rendered nothing useful: %q", got)
	}
}

// runVaultAgent runs Vault Agent (the real vault binary) with the config
// hcl until it exits (exit_after_auth), failing the test on an error or
// after 90 s, with the agent's log.
func runVaultAgent(t *testing.T, v *vaulttest.Server, dir, hcl string) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "agent.hcl"), []byte(hcl), 0o600)
	cmd := exec.Command(v.Bin, "agent", "-config="+filepath.Join(dir, "agent.hcl"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var agentLog bytes.Buffer
	cmd.Stdout, cmd.Stderr = &agentLog, &agentLog
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("vault agent: %v\n%s", err, agentLog.String())
		}
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("vault agent did not exit:\n%s", agentLog.String())
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Transit keys through the CLI: one secret wrapped for a local key and a
// Vault Transit key opens with either (DR across backends).
func TestTransitKeyFromCLI(t *testing.T) {
	dir := setup(t)
	v := vaulttest.Start(t)
	v.Run(t, "secrets", "enable", "transit")
	v.Run(t, "write", "-f", "transit/keys/app")
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	sealed := mustRun(t, "dr-secret", "encrypt", "--name", "n", "--key", "local", "--key", "transit:transit/app")
	inspect := mustRun(t, sealed, "inspect")
	if !strings.Contains(inspect, "transit:transit/app") || !strings.Contains(inspect, "local:") {
		t.Fatalf("inspect: %s", inspect)
	}
	// Only the Transit key configured (the default local key moved away).
	os.Rename(filepath.Join(dir, "keys", "local.key"), filepath.Join(dir, "keys", "away.key"))
	if got := mustRun(t, sealed, "decrypt", "--key", "transit:transit/app"); got != "dr-secret" {
		t.Fatalf("decrypt with transit = %q", got)
	}
	wantExit(t, run(t, sealed, "decrypt"), 3, "no configured key")
	t.Setenv("VAULT_TOKEN", "")
	wantExit(t, run(t, sealed, "decrypt", "--key", "transit:transit/app"), 2, "VAULT_TOKEN")
}

// A config naming Vault over plain http off loopback is refused before
// anything is sent, exit 2, saying what to do; so is VAULT_SKIP_VERIFY.
func TestPlainHTTPVaultIsRefusedBeforeAnythingIsSent(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte("hvs.not-sent"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	write := func(addr string) {
		os.WriteFile(cfg, []byte("vault:\n  address: "+addr+"\n  auth: {method: token, token_file: token}\noutput_root: out\nsecrets:\n  pw: vault:secret/data/app#password\noutputs:\n  - path: app.env\n"), 0o600)
	}
	write("http://vault.example.com:8200")
	r := run(t, "", "run", "--once", "-c", cfg)
	wantExit(t, r, 2, "plain HTTP")
	if !strings.Contains(r.stderr, "insecure_http: true") {
		t.Errorf("the refusal does not say how to allow it: %s", r.stderr)
	}
	write("https://vault.example.com:8200")
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	r = run(t, "", "run", "--once", "-c", cfg)
	wantExit(t, r, 2, "VAULT_SKIP_VERIFY")
}
