package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/ststest"
	"github.com/secrets-broker/secrets-broker/internal/testca"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
)

// run --once with the cert and aws logins as a user configures them: the
// config's words reach the right login, and the log says who logged in.
func TestRunOnceWithCertAndAWSLogins(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("VAULT_CACERT", "")
	t.Setenv("VAULT_CLIENT_CERT", "")
	t.Setenv("VAULT_CLIENT_KEY", "")
	policy := func(t *testing.T, v *vaulttest.Server, dir string) {
		p := filepath.Join(dir, "read.hcl")
		os.WriteFile(p, []byte(`path "secret/data/app" { capabilities = ["read"] }`), 0o600)
		v.Run(t, "policy", "write", "read-app", p)
		v.Run(t, "kv", "put", "secret/app", "password=pw-cloud")
	}
	t.Run("cert", func(t *testing.T) {
		v := vaulttest.StartTLS(t, t.TempDir())
		dir := t.TempDir()
		policy(t, v, dir)
		ca := testca.New(t, "clients")
		v.Run(t, "auth", "enable", "cert")
		v.Run(t, "write", "auth/cert/certs/web", "certificate=@"+ca.WriteCA(t, dir, "clients-ca.pem"), "token_policies=read-app")
		ca.WritePair(t, "web", filepath.Join(dir, "web.crt"), filepath.Join(dir, "web.key"))
		cfg := filepath.Join(dir, "broker.yaml")
		os.WriteFile(cfg, []byte("vault:\n  address: "+v.Addr+"\n  ca_cert: "+v.CACert+"\n  auth:\n    method: cert\n    name: web\n    client_cert: web.crt\n    client_key: web.key\n"+
			"output_root: out\nsecrets:\n  pw: vault:secret/data/app#password\noutputs:\n  - path: app.env\n"), 0o600)
		r := run(t, "", "run", "--once", "--config", cfg)
		if r.code != 0 || readFile(t, filepath.Join(dir, "out", "app.env")) != "pw=\"pw-cloud\"\n" {
			t.Fatalf("run --once: %d\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, `msg="vault: logged in" method="cert (role web)"`) {
			t.Errorf("the login is not logged at INFO:\n%s", r.stderr)
		}
	})
	t.Run("aws", func(t *testing.T) {
		v := vaulttest.Start(t)
		dir := t.TempDir()
		policy(t, v, dir)
		const key, secret = "AKIAEXAMPLE000000002", "cli-test-secret-access-key-0000000000000"
		sts := ststest.Start(t, ststest.Identity{AccessKeyID: key, SecretAccessKey: secret, ARN: "arn:aws:iam::123456789012:role/web", UserID: "AROAEXAMPLE", Account: "123456789012"})
		v.Run(t, "auth", "enable", "aws")
		v.Run(t, "write", "auth/aws/config/client", "sts_endpoint="+sts.URL, "iam_server_id_header_value=vault.example.com")
		v.Run(t, "write", "auth/aws/role/web", "auth_type=iam", "bound_iam_principal_arn=arn:aws:iam::123456789012:role/web", "resolve_aws_unique_ids=false", "token_policies=read-app")
		t.Setenv("AWS_ACCESS_KEY_ID", key)
		t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
		t.Setenv("AWS_SESSION_TOKEN", "")
		t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
		t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
		cfg := filepath.Join(dir, "broker.yaml")
		os.WriteFile(cfg, []byte("vault:\n  address: "+v.Addr+"\n  auth:\n    method: aws\n    role: web\n    header_value: vault.example.com\n"+
			"output_root: out\nsecrets:\n  pw: vault:secret/data/app#password\noutputs:\n  - path: app.env\n"), 0o600)
		r := run(t, "", "run", "--once", "--config", cfg)
		if r.code != 0 || readFile(t, filepath.Join(dir, "out", "app.env")) != "pw=\"pw-cloud\"\n" {
			t.Fatalf("run --once: %d\n%s\nSTS refused: %v", r.code, r.stderr, sts.Rejected())
		}
		if strings.Contains(r.stderr, secret) || strings.Contains(r.stderr, secret[:10]) {
			t.Fatal("the AWS secret key reached the log")
		}
		// With the wrong server ID Vault refuses: exit 7 (denied), naming
		// the method.
		os.WriteFile(cfg, []byte("vault:\n  address: "+v.Addr+"\n  auth:\n    method: aws\n    role: web\n    header_value: vault.other.example.com\n"+
			"output_root: out\nsecrets:\n  pw: vault:secret/data/app#password\noutputs:\n  - path: app.env\n"), 0o600)
		r = run(t, "", "run", "--once", "--config", cfg)
		if r.code != 7 || !strings.Contains(r.stderr, "aws (iam, role web)") {
			t.Fatalf("a wrong server ID: exit %d\n%s", r.code, r.stderr)
		}
	})
}
