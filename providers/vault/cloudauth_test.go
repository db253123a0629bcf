package vault_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/ststest"
	"github.com/secrets-broker/secrets-broker/internal/testca"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

const readAppPolicy = `path "secret/data/app" { capabilities = ["read"] }`

func policyFile(t *testing.T) string {
	return writeFile(t, t.TempDir(), "read-app.hcl", readAppPolicy)
}

// commonName is the cert auth metadata of the client's current token: the
// certificate Vault saw at its login.
func commonName(t *testing.T, c *vault.Client) string {
	t.Helper()
	s, err := c.API().Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := s.Data["meta"].(map[string]any)
	cn, _ := meta["common_name"].(string)
	return cn
}

// Cert auth over Vault's TLS listener: the client certificate is read from
// its files at each login, so a rotated certificate is the one the next
// login presents, with no restart.
func TestCertAuthPicksUpARotatedCertificate(t *testing.T) {
	ctx := context.Background()
	certs := t.TempDir()
	v := vaulttest.StartTLS(t, certs)
	ca := testca.New(t, "clients")
	caFile := ca.WriteCA(t, t.TempDir(), "clients-ca.pem")
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	v.Run(t, "policy", "write", "read-app", policyFile(t))
	v.Run(t, "auth", "enable", "cert")
	// A short max TTL makes the broker log in again soon, as a real one
	// does at its token's max TTL.
	v.Run(t, "write", "auth/cert/certs/web", "certificate=@"+caFile, "token_policies=read-app", "token_ttl=3s", "token_max_ttl=3s")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	ca.WritePair(t, "web-1", crt, key)
	t.Setenv("VAULT_TOKEN", "")
	c, err := vault.Connect(ctx, vault.Config{Address: v.Addr, CACert: v.CACert, ClientCert: crt, ClientKey: key,
		Auth: vault.CertAuth{Name: "web", CertFile: crt, KeyFile: key}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(ctx, ref(t, "secret/data/app#password")); err != nil {
		t.Fatal(err)
	}
	if cn := commonName(t, c); cn != "web-1" {
		t.Fatalf("logged in as %q, want web-1", cn)
	}
	ca.WritePair(t, "web-2", crt, key)
	deadline := time.Now().Add(60 * time.Second)
	for commonName(t, c) != "web-2" {
		if time.Now().After(deadline) {
			t.Fatal("the rotated certificate was not used by a later login within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.Read(ctx, ref(t, "secret/data/app#password")); err != nil {
		t.Fatal(err)
	}
	// A certificate from a CA Vault does not trust is refused as denied,
	// naming the method.
	other := testca.New(t, "strangers")
	bad := t.TempDir()
	bcrt, bkey := filepath.Join(bad, "c.crt"), filepath.Join(bad, "c.key")
	other.WritePair(t, "web-1", bcrt, bkey)
	_, err = vault.Connect(ctx, vault.Config{Address: v.Addr, CACert: v.CACert, ClientCert: bcrt, ClientKey: bkey,
		Auth: vault.CertAuth{Name: "web", CertFile: bcrt, KeyFile: bkey}})
	wantErr(t, err, fail.Denied, "cert (role web)")
	// No certificate at all is the config's to fix.
	_, err = vault.Connect(ctx, vault.Config{Address: v.Addr, CACert: v.CACert, Auth: vault.CertAuth{Name: "web"}})
	wantErr(t, err, fail.Usage, "client_cert")
}

const (
	akid   = "AKIAEXAMPLE000000001"
	secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	arn    = "arn:aws:sts::123456789012:assumed-role/web/i-0abc"
)

// awsVault is a Vault whose aws auth method sends the signed requests it
// is given to the STS stand-in (AWS is unreachable here; internal/ststest
// checks SigV4 signatures as STS does).
func awsVault(t *testing.T) (*vaulttest.Server, *ststest.Server) {
	v := vaulttest.Start(t)
	sts := ststest.Start(t, ststest.Identity{AccessKeyID: akid, SecretAccessKey: secret, SessionToken: "session-token-1", ARN: arn, UserID: "AROAEXAMPLE:i-0abc", Account: "123456789012"})
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	v.Run(t, "policy", "write", "read-app", policyFile(t))
	v.Run(t, "auth", "enable", "aws")
	v.Run(t, "write", "auth/aws/config/client", "sts_endpoint="+sts.URL, "iam_server_id_header_value=vault.example.com")
	v.Run(t, "write", "auth/aws/role/web", "auth_type=iam", "bound_iam_principal_arn=arn:aws:iam::123456789012:role/web",
		"resolve_aws_unique_ids=false", "token_policies=read-app")
	return v, sts
}

// AWS IAM auth with the standard credential chain (here the AWS_*
// environment), the server ID header signed in.
func TestAWSIAMAuth(t *testing.T) {
	ctx := context.Background()
	v, sts := awsVault(t)
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("AWS_ACCESS_KEY_ID", akid)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "session-token-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	before := sts.Calls()
	c, err := vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: vault.NewAWSAuth(vault.AWSAuth{Role: "web", ServerID: "vault.example.com"})})
	if err != nil {
		t.Fatalf("%v\nSTS refused: %v", err, sts.Rejected())
	}
	defer c.Close()
	if _, err := c.Read(ctx, ref(t, "secret/data/app#password")); err != nil {
		t.Fatal(err)
	}
	// Vault checked the signed request with STS (it may ask more than
	// once per login), and STS found every signature good.
	if n := sts.Calls() - before; n == 0 || len(sts.Rejected()) != 0 {
		t.Errorf("STS saw %d requests for the login and refused %q", n, sts.Rejected())
	}
}

// What Vault refuses is a denied login that names the method and never
// carries the AWS secret key or session token.
func TestAWSIAMAuthRefusals(t *testing.T) {
	ctx := context.Background()
	v, sts := awsVault(t)
	t.Setenv("VAULT_TOKEN", "")
	for _, tc := range []struct {
		name string
		auth vault.AWSAuth
	}{
		{"another Vault's server ID", vault.AWSAuth{Role: "web", ServerID: "vault.other.example.com",
			Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "session-token-1")}},
		{"no server ID", vault.AWSAuth{Role: "web", Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "session-token-1")}},
		{"a wrong secret key", vault.AWSAuth{Role: "web", ServerID: "vault.example.com",
			Credentials: credentials.NewStaticCredentialsProvider(akid, "not-"+secret, "session-token-1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: vault.NewAWSAuth(tc.auth)})
			wantErr(t, err, fail.Denied, "aws (iam, role web)")
			for _, s := range []string{secret, "session-token-1", secret[:8]} {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("the error carries a credential: %v", err)
				}
			}
		})
	}
	if r := sts.Rejected(); len(r) != 1 || !strings.Contains(r[0], "signature") {
		t.Errorf("STS refused %q, want the wrong key's signature only (the server ID is Vault's to check)", r)
	}
}

// userpass (and ldap, the same shape): the password is read from its file
// at every login, so a rotated password is used without a restart; a
// wrong one is denied without the password in the error.
func TestUserpassAuth(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	writePolicy(t, v, "read-app", readAppPolicy)
	v.Run(t, "auth", "enable", "userpass")
	v.Run(t, "write", "auth/userpass/users/ci", "password=first-pass-1", "token_policies=read-app")
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "first-pass-1\n")
	t.Setenv("VAULT_TOKEN", "")
	auth := vault.PasswordAuth{Method: "userpass", Username: "ci", PasswordFile: pwFile}
	c, err := vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(ctx, ref(t, "secret/data/app#password")); err != nil {
		t.Fatal(err)
	}
	v.Run(t, "write", "auth/userpass/users/ci/password", "password=second-pass-2")
	writeFile(t, dir, "pw", "second-pass-2\n")
	if _, err := auth.Login(ctx, c.API()); err != nil {
		t.Fatalf("a login after the password rotated: %v", err)
	}
	writeFile(t, dir, "pw", "wrong-pass-3\n")
	_, err = vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: auth})
	wantErr(t, err, fail.Denied, "userpass (user ci)")
	if strings.Contains(err.Error(), "wrong-pass-3") {
		t.Fatal("the password is in the error")
	}
}

// A credential_process whose output does not parse puts that output, keys
// and all, in the SDK's error: the login error carries none of it.
func TestAWSCredentialErrorsCarryNoCredentials(t *testing.T) {
	dir := t.TempDir()
	script := writeFile(t, dir, "cred.sh", "#!/bin/sh\necho '{\"Version\":1,\"AccessKeyId\":\"AKIALEAK00000000\",\"SecretAccessKey\":\"LEAKED-secret-access-key\",\"SessionToken\":\"LEAKED-session-token\",\"Expiration\":1700000000}'\n")
	os.Chmod(script, 0o700)
	cfg := writeFile(t, dir, "config", "[profile poc]\ncredential_process = "+script+"\n")
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", cfg)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_PROFILE", "poc")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err := vault.NewAWSAuth(vault.AWSAuth{Role: "web"}).Login(context.Background(), nil)
	if err == nil {
		t.Fatal("a malformed credential_process logged in")
	}
	for _, leak := range []string{"LEAKED", "AKIALEAK", "\n"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("the error carries %q: %v", leak, err)
		}
	}
	if !strings.Contains(err.Error(), "credential_process") {
		t.Errorf("the error does not say what to check: %v", err)
	}
}
