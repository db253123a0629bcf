package vault_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// Credential files are read bounded and never block: a FIFO (which made
// run --once hang past --timeout and SIGTERM), a device (/dev/zero was
// read without end) and an oversized file are refused at once, naming the
// file, for every login method. Fails on c5e921c (os.ReadFile, and the
// auth library's own read of the service-account token).
func TestCredentialFilesAreReadBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	os.WriteFile(big, []byte(strings.Repeat("x", vault.MaxCredentialLen+1)), 0o600)
	ok := filepath.Join(dir, "ok")
	os.WriteFile(ok, []byte("ok"), 0o600)
	client, err := api.NewClient(&api.Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{fifo, "not a regular file"},
		{"/dev/zero", "not a regular file"},
		{big, "larger than"},
	} {
		for name, a := range map[string]vault.Auth{
			"token":            vault.TokenAuth{File: c.file},
			"approle role_id":  vault.NewAppRoleAuth(vault.AppRoleAuth{RoleIDFile: c.file, SecretIDFile: ok}),
			"approle secretid": vault.NewAppRoleAuth(vault.AppRoleAuth{RoleIDFile: ok, SecretIDFile: c.file}),
			"kubernetes":       vault.KubernetesAuth{Role: "web", TokenFile: c.file},
			"jwt":              vault.JWTAuth{Role: "web", JWTFile: c.file},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			done := make(chan error, 1)
			go func() { _, err := a.Login(ctx, client); done <- err }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.file) {
					t.Errorf("%s from %s: %v; want %q naming the file", name, c.file, err, c.want)
				}
			case <-ctx.Done():
				t.Fatalf("%s from %s: the login blocked", name, c.file)
			}
			cancel()
			if name != "approle secretid" {
				if _, err := a.Principal(); err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s Principal from %s: %v; want %q", name, c.file, err, c.want)
				}
			}
		}
	}
}

// Principal names whom the credentials make the broker, for every method:
// the same for a rotated secret_id or a re-issued token of the same
// subject, another one for another role_id, subject, issuer or token.
func TestPrincipalFollowsTheCredentialNotItsFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(v), 0o600)
		return p
	}
	jwt := func(iss, sub string, iat int) string {
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"iss":"`+iss+`","sub":"`+sub+`","iat":`+string(rune('0'+iat))+`}`)) + ".c2ln"
	}
	principal := func(a vault.Auth) string {
		t.Helper()
		p, err := a.Principal()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(p, "role-a") || strings.Contains(p, "system:serviceaccount") || strings.Contains(p, "hvs.") {
			t.Fatalf("Principal carries the credential in the clear: %s", p)
		}
		return p
	}
	same := func(what string, a, b vault.Auth) {
		t.Helper()
		if principal(a) != principal(b) {
			t.Errorf("%s: principals differ; want the same login", what)
		}
	}
	differ := func(what string, a, b vault.Auth) {
		t.Helper()
		if principal(a) == principal(b) {
			t.Errorf("%s: principals are the same; want another login", what)
		}
	}

	roleFile, sidFile := write("role-id", "role-a"), write("secret-id", "s1")
	a := vault.NewAppRoleAuth(vault.AppRoleAuth{RoleIDFile: roleFile, SecretIDFile: sidFile})
	before := principal(a)
	write("secret-id", "s2")
	if principal(a) != before {
		t.Error("approle: a new secret_id changed the principal")
	}
	write("role-id", "role-b")
	if principal(a) == before {
		t.Error("approle: a new role_id in the same file kept the principal (the reported hole)")
	}

	for _, m := range []struct {
		name string
		auth func(file string) vault.Auth
	}{
		{"jwt", func(f string) vault.Auth { return vault.JWTAuth{Role: "web", JWTFile: f} }},
		{"kubernetes", func(f string) vault.Auth { return vault.KubernetesAuth{Role: "web", TokenFile: f} }},
	} {
		t1 := write(m.name+"1", jwt("https://issuer", "system:serviceaccount:default:web", 1))
		t2 := write(m.name+"2", jwt("https://issuer", "system:serviceaccount:default:web", 2))
		t3 := write(m.name+"3", jwt("https://issuer", "system:serviceaccount:default:admin", 1))
		t4 := write(m.name+"4", jwt("https://other", "system:serviceaccount:default:web", 1))
		same(m.name+": a rotated token of the same subject", m.auth(t1), m.auth(t2))
		differ(m.name+": another subject", m.auth(t1), m.auth(t3))
		differ(m.name+": another issuer", m.auth(t1), m.auth(t4))
		if _, err := m.auth(write(m.name+"-bad", "not-a-jwt")).Principal(); err == nil {
			t.Errorf("%s: a token that is not a JWT named a principal", m.name)
		}
	}
	differ("jwt and kubernetes roles", vault.JWTAuth{Role: "web", JWTFile: filepath.Join(dir, "jwt1")}, vault.JWTAuth{Role: "admin", JWTFile: filepath.Join(dir, "jwt1")})

	differ("token: another token in the file", vault.TokenAuth{File: write("tok1", "hvs.one")}, vault.TokenAuth{File: write("tok2", "hvs.two")})
	t.Setenv("VAULT_TOKEN", "hvs.env")
	same("token: VAULT_TOKEN", vault.TokenAuth{}, vault.TokenAuth{File: write("tok3", "hvs.env")})
}

// The TLS files Vault's client library reads itself (ca_cert, client_cert,
// client_key) are checked first, bounded: a FIFO there is refused at once
// instead of blocking Connect (found by review).
func TestTLSFilesAreReadBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []vault.Config{
		{Address: "https://127.0.0.1:1", CACert: fifo},
		{Address: "https://127.0.0.1:1", ClientCert: fifo, ClientKey: fifo},
		{Address: "https://127.0.0.1:1", CAPath: dir}, // the FIFO is in it
	} {
		done := make(chan error, 1)
		go func() { _, err := vault.Connect(context.Background(), cfg); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("%+v: %v; want the FIFO refused", cfg, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%+v: Connect blocked on a FIFO", cfg)
		}
	}
}
