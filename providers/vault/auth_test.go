package vault_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

const readPolicy = `path "secret/data/*" { capabilities = ["read"] }`

func TestAppRoleWrappedSecretID(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	v.Run(t, "auth", "enable", "approle")
	writePolicy(t, v, "reader", readPolicy)
	v.Run(t, "write", "auth/approle/role/web", "token_policies=reader", "token_ttl=1h")
	roleID := strings.TrimSpace(v.Run(t, "read", "-field=role_id", "auth/approle/role/web/role-id"))
	wrapped := strings.TrimSpace(v.Run(t, "write", "-f", "-wrap-ttl=5m", "-field=wrapping_token", "auth/approle/role/web/secret-id"))
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret-id", wrapped)
	auth := vault.NewAppRoleAuth(vault.AppRoleAuth{RoleIDFile: writeFile(t, dir, "role-id", roleID), SecretIDFile: secretFile, Wrapped: true, RemoveSecretIDFile: true})
	t.Setenv("VAULT_TOKEN", "")
	c := connect(t, v, auth)
	if _, err := c.Read(ctx, ref(t, "secret/data/app#password")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(secretFile); !os.IsNotExist(err) {
		t.Fatal("secret_id file not removed after login")
	}
	// Logging in again uses the unwrapped secret_id kept in memory.
	if _, err := auth.Login(ctx, c.API()); err != nil {
		t.Fatalf("second login: %v", err)
	}

	// A bad secret_id: the error names the method and Vault's reason.
	bad := vault.NewAppRoleAuth(vault.AppRoleAuth{RoleIDFile: writeFile(t, dir, "role-id2", roleID), SecretIDFile: writeFile(t, dir, "bad", "not-a-secret-id")})
	_, err := vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: bad})
	wantErr(t, err, fail.Denied, "approle", "auth/approle/login", "invalid")
	if strings.Contains(err.Error(), "not-a-secret-id") {
		t.Fatal("secret_id in error")
	}
}

func writePolicy(t *testing.T, v *vaulttest.Server, name, hcl string) {
	t.Helper()
	if _, err := v.Client(t).Logical().Write("sys/policies/acl/"+name, map[string]any{"policy": hcl}); err != nil {
		t.Fatal(err)
	}
}

// signer makes ES256 JWTs with a key made in the test; Vault's jwt method is
// configured with its public key.
type signer struct{ key *ecdsa.PrivateKey }

func newSigner(t *testing.T) (*signer, string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	return &signer{k}, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func (s *signer) jwt(t *testing.T, claims map[string]any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	unsigned := enc(map[string]string{"alg": "ES256", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(unsigned))
	r, sg, err := ecdsa.Sign(rand.Reader, s.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sg.FillBytes(sig[32:])
	return unsigned + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func setupJWT(t *testing.T, v *vaulttest.Server, mount string) *signer {
	s, pub := newSigner(t)
	root := v.Client(t)
	v.Run(t, "auth", "enable", "-path="+mount, "jwt")
	if _, err := root.Logical().Write("auth/"+mount+"/config", map[string]any{"jwt_validation_pubkeys": []string{pub}}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/"+mount+"/role/web", map[string]any{
		"role_type": "jwt", "user_claim": "sub", "bound_audiences": []string{"vault"},
		"token_policies": []string{"reader"}, "token_ttl": "1h",
	}); err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(sub string) map[string]any {
	now := time.Now()
	return map[string]any{"sub": sub, "aud": "vault", "iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(10 * time.Minute).Unix()}
}

func TestJWTAndKubernetesAuth(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	writePolicy(t, v, "reader", readPolicy)
	jwtSigner := setupJWT(t, v, "jwt")
	// The Kubernetes login's request shape (role and a service-account JWT
	// to auth/MOUNT/login) against Vault's jwt method mounted at
	// "kubernetes"; k8s_test.go runs it against a real kube-apiserver.
	k8sSigner := setupJWT(t, v, "kubernetes")
	dir := t.TempDir()
	t.Setenv("VAULT_TOKEN", "")

	jwtFile := writeFile(t, dir, "jwt", jwtSigner.jwt(t, claims("ci-job")))
	c := connect(t, v, vault.JWTAuth{Role: "web", JWTFile: jwtFile})
	if _, err := c.Read(ctx, ref(t, "secret/data/app#password")); err != nil {
		t.Fatal(err)
	}
	// The file is re-read at every login: a rotated token is used.
	writeFile(t, dir, "jwt", jwtSigner.jwt(t, claims("ci-job-2")))
	if _, err := (vault.JWTAuth{Role: "web", JWTFile: jwtFile}).Login(ctx, c.API()); err != nil {
		t.Fatalf("login with the rotated JWT: %v", err)
	}

	saFile := writeFile(t, dir, "sa-token", k8sSigner.jwt(t, claims("system:serviceaccount:default:web")))
	kc := connect(t, v, vault.KubernetesAuth{Role: "web", TokenFile: saFile})
	if _, err := kc.Read(ctx, ref(t, "secret/data/app#password")); err != nil {
		t.Fatal(err)
	}

	// Failures name method, role and Vault's reason, never the token.
	wrongKey := writeFile(t, dir, "wrong", k8sSigner.jwt(t, claims("x")))
	_, err := vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: vault.JWTAuth{Role: "web", JWTFile: wrongKey}})
	wantErr(t, err, fail.Denied, "jwt (role web)", "auth/jwt/login")
	if strings.Contains(err.Error(), "eyJ") {
		t.Fatal("JWT in error")
	}
	_, err = vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: vault.JWTAuth{Role: "nope", JWTFile: jwtFile}})
	wantErr(t, err, fail.Denied, "jwt (role nope)", `role "nope" could not be found`)
	_, err = vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: vault.KubernetesAuth{Role: "web", TokenFile: dir + "/missing"}})
	wantErr(t, err, fail.Usage, "kubernetes (role web)")
}

// The broker's own token is renewed while Vault extends it and re-acquired
// by logging in again when it reaches its max TTL.
func TestTokenRenewedThenReacquired(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	writePolicy(t, v, "reader", readPolicy)
	v.Run(t, "auth", "enable", "approle")
	v.Run(t, "write", "auth/approle/role/short", "token_policies=reader", "token_ttl=3s", "token_max_ttl=6s")
	roleID := strings.TrimSpace(v.Run(t, "read", "-field=role_id", "auth/approle/role/short/role-id"))
	secretID := strings.TrimSpace(v.Run(t, "write", "-f", "-field=secret_id", "auth/approle/role/short/secret-id"))
	dir := t.TempDir()
	t.Setenv("VAULT_TOKEN", "")
	c := connect(t, v, vault.NewAppRoleAuth(vault.AppRoleAuth{RoleIDFile: writeFile(t, dir, "r", roleID), SecretIDFile: writeFile(t, dir, "s", secretID)}))
	first := c.API().Token()
	seenNew := false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		// Every read in this window must succeed: the token never lapses.
		if _, err := c.Read(ctx, ref(t, "secret/data/app#password")); err != nil {
			t.Fatalf("read failed at %s: %v", time.Now().Format(time.TimeOnly), err)
		}
		if c.API().Token() != first {
			seenNew = true
		}
		if seenNew && time.Until(deadline) < 10*time.Second {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !seenNew {
		t.Fatal("token was never re-acquired after its max TTL")
	}
}

// recordingTokens is a TokenStore that remembers whom each kept token was
// got as.
type recordingTokens struct{ principals []string }

func (r *recordingTokens) LoadToken(context.Context) (string, error) { return "", nil }
func (r *recordingTokens) SaveToken(_ context.Context, _ *api.Secret, principal string) error {
	r.principals = append(r.principals, principal)
	return nil
}

// Every login hands the token store the principal of the credentials it
// logged in with, read when it logged in: after the JWT file names another
// subject under a running broker, a re-login's token is reported as the
// new subject's, never kept under the principal the broker started with
// (which a restart with the old file would then reuse). Found by review:
// the restart cache computed the principal once and sealed later logins'
// tokens under it.
func TestEachLoginNamesItsOwnPrincipal(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	writePolicy(t, v, "reader", readPolicy)
	jwtSigner := setupJWT(t, v, "jwt")
	dir := t.TempDir()
	file := writeFile(t, dir, "jwt", jwtSigner.jwt(t, claims("ci-job-a")))
	auth := vault.JWTAuth{Role: "web", JWTFile: file}
	pA, err := auth.Principal()
	if err != nil {
		t.Fatal(err)
	}
	tokens := &recordingTokens{}
	t.Setenv("VAULT_TOKEN", "")
	c, err := vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: auth, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(ctx, ref(t, "secret/data/app#password")); err != nil {
		t.Fatal(err)
	}
	// The file now names another subject; a denied read makes the client
	// log in again, with it.
	writeFile(t, dir, "jwt", jwtSigner.jwt(t, claims("ci-job-b")))
	pB, _ := auth.Principal()
	if _, err := c.Read(ctx, ref(t, "secret/metadata/app#x")); err == nil {
		t.Log("the read after the re-login succeeded")
	}
	if len(tokens.principals) < 2 || tokens.principals[0] != pA || tokens.principals[len(tokens.principals)-1] != pB || pA == pB {
		t.Fatalf("kept tokens' principals %q; want the first subject's, then the second's", tokens.principals)
	}
	// The client says whom its current token was got as: the restart
	// cache writes under nothing else (a daemon's newer generation shares
	// this client; found by the second review).
	if c.Principal() != pB {
		t.Fatalf("Principal after the re-login = %q, want the second subject's", c.Principal())
	}
}
