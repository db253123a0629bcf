package vault_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/redact"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// Every test here runs against a real Vault dev server.

func connect(t *testing.T, v *vaulttest.Server, auth vault.Auth) *vault.Client {
	t.Helper()
	if auth == nil {
		t.Setenv("VAULT_TOKEN", v.Token)
	}
	c, err := vault.Connect(context.Background(), vault.Config{Address: v.Addr, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ref(t *testing.T, s string) vault.Ref {
	t.Helper()
	r, err := vault.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantErr(t *testing.T, err error, kind fail.Kind, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got none", kind)
	}
	if fail.KindOf(err) != kind {
		t.Fatalf("class %s, want %s: %v", fail.KindOf(err), kind, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}

func TestKVReads(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw-v1", "user=app")
	v.Run(t, "kv", "put", "secret/app", "password=pw-v2", "user=app", "port=5432")
	v.Run(t, "secrets", "enable", "-path=kv1", "-version=1", "kv")
	v.Run(t, "kv", "put", "kv1/legacy", "token=legacy-token")
	c := connect(t, v, nil)

	s, err := c.Read(ctx, ref(t, "secret/data/app#password"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Value(); got != "pw-v2" || !s.KVv2 || s.Metadata["version"] == nil {
		t.Fatalf("latest = %q kv2=%v meta=%v", got, s.KVv2, s.Metadata)
	}
	if _, ok := s.Raw.Data["data"].(map[string]any)["password"]; !ok {
		t.Fatal("raw response lacks .Data.data.password (Vault Agent template shape)")
	}
	s, err = c.Read(ctx, ref(t, "secret/data/app?version=1#password"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Value(); got != "pw-v1" {
		t.Fatalf("version 1 = %q", got)
	}
	if s.Lease.TTL != 0 || s.Lease.ID != "" {
		t.Fatalf("KV has a lease: %+v", s.Lease)
	}
	s, err = c.Read(ctx, ref(t, "kv1/legacy#token"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Value(); got != "legacy-token" || s.KVv2 {
		t.Fatalf("kv1 = %q", got)
	}
	s, _ = c.Read(ctx, ref(t, "secret/data/app#port"))
	if got, _ := s.Value(); got != "5432" {
		t.Fatalf("port = %q", got)
	}

	// Missing field: names the fields present, never their values.
	s, _ = c.Read(ctx, ref(t, "secret/data/app#passwd"))
	_, err = s.Value()
	wantErr(t, err, fail.NotFound, `no field "passwd"`, "password, port, user", "secret/data/app")
	if strings.Contains(err.Error(), "pw-v2") {
		t.Fatal("value in error")
	}
	// KV v2 path given as v1.
	_, err = c.Read(ctx, ref(t, "secret/app#password"))
	wantErr(t, err, fail.NotFound, "secret/app", "secret/data/app")
	// Not found.
	_, err = c.Read(ctx, ref(t, "secret/data/nope#x"))
	wantErr(t, err, fail.NotFound, "secret/data/nope")
	_, err = c.Read(ctx, ref(t, "kv1/nope"))
	wantErr(t, err, fail.NotFound, "kv1/nope")
	// Deleted version.
	v.Run(t, "kv", "delete", "-versions=1", "secret/app")
	_, err = c.Read(ctx, ref(t, "secret/data/app?version=1#password"))
	wantErr(t, err, fail.NotFound, "deleted")
}

func TestReadManyDedup(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	for i := range 10 {
		v.Run(t, "kv", "put", fmt.Sprintf("secret/svc%d", i), "a=1", "b=2")
	}
	c := connect(t, v, nil)
	var refs []vault.Ref
	for i := range 10 {
		for _, f := range []string{"a", "b", "a"} {
			refs = append(refs, ref(t, fmt.Sprintf("secret/data/svc%d#%s", i, f)))
		}
	}
	before := c.Requests()
	got, err := c.ReadMany(ctx, refs, 8)
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Requests() - before; n != 10 {
		t.Fatalf("%d requests for 10 distinct paths", n)
	}
	for i, s := range got {
		val, err := s.Value()
		want := map[string]string{"a": "1", "b": "2"}[refs[i].Field]
		if err != nil || val != want {
			t.Fatalf("ref %s = %q, %v", refs[i], val, err)
		}
	}
	// One missing path: its references are named, the others still fetched.
	refs = append(refs, ref(t, "secret/data/missing#a"))
	got, err = c.ReadMany(ctx, refs, 8)
	wantErr(t, err, fail.NotFound, "secret/data/missing#a")
	if got[0] == nil {
		t.Fatal("good refs lost because of one bad ref")
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	root := v.Client(t)

	// Permission denied: a token with only the default policy.
	weak, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", weak.Auth.ClientToken)
	c, err := vault.Connect(ctx, vault.Config{Address: v.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Read(ctx, ref(t, "secret/data/app#password"))
	wantErr(t, err, fail.Denied, "secret/data/app", "permission denied")
	if strings.Contains(err.Error(), weak.Auth.ClientToken) {
		t.Fatal("token in error")
	}
	if fail.KindOf(err).Retryable() {
		t.Fatal("permission denied must not be retryable")
	}

	// Expired (revoked) token at connect time: named method, no token.
	root.Auth().Token().RevokeOrphan(weak.Auth.ClientToken)
	_, err = vault.Connect(ctx, vault.Config{Address: v.Addr})
	wantErr(t, err, fail.Denied, "token (VAULT_TOKEN)", "lookup-self")
	if strings.Contains(err.Error(), weak.Auth.ClientToken) {
		t.Fatal("token in error")
	}

	// Malformed address.
	t.Setenv("VAULT_TOKEN", v.Token)
	for _, addr := range []string{"vault.example.com:8200", "http://", "ftp://x"} {
		_, err = vault.Connect(ctx, vault.Config{Address: addr})
		wantErr(t, err, fail.Usage, "not a URL")
	}
	// Malformed references.
	for _, bad := range []string{"", "/", "secret//x", "secret/../x", "a?version=x", "a?version=0"} {
		_, err := vault.ParseRef(bad)
		wantErr(t, err, fail.Usage, "expected PATH")
	}

	c2 := connect(t, v, nil)
	// Sealed: retryable, says so.
	v.Run(t, "operator", "seal")
	_, err = c2.Read(ctx, ref(t, "secret/data/app#password"))
	wantErr(t, err, fail.Unavailable, "secret/data/app", "sealed")
	// Unreachable: retryable.
	v.Stop()
	_, err = c2.Read(ctx, ref(t, "secret/data/app#password"))
	wantErr(t, err, fail.Unavailable, "cannot reach Vault", "secret/data/app#password")
	var ve *vault.Error
	if !asVaultError(err, &ve) || !ve.Retryable() {
		t.Fatalf("want a retryable *vault.Error: %v", err)
	}
}

func asVaultError(err error, target **vault.Error) bool {
	e, ok := err.(*vault.Error)
	if ok {
		*target = e
	}
	return ok
}

func TestNamespaceAndEnvironment(t *testing.T) {
	// VAULT_ADDR and VAULT_TOKEN from the environment, as the Vault CLI reads them.
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/env", "k=v")
	t.Setenv("VAULT_ADDR", v.Addr)
	t.Setenv("VAULT_TOKEN", v.Token)
	c, err := vault.Connect(context.Background(), vault.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.Read(context.Background(), ref(t, "secret/data/env#k"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Value(); got != "v" {
		t.Fatalf("got %q", got)
	}
	// Namespaces are Vault Enterprise; Vault OSS ignores the header. A
	// recording reverse proxy on loopback shows that VAULT_NAMESPACE is sent.
	target, _ := url.Parse(v.Addr)
	var mu sync.Mutex
	var seen []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Vault-Namespace"))
		mu.Unlock()
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	t.Setenv("VAULT_ADDR", proxy.URL)
	t.Setenv("VAULT_NAMESPACE", "team-a")
	c2, err := vault.Connect(context.Background(), vault.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Read(context.Background(), ref(t, "secret/data/env#k")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 2 || seen[len(seen)-1] != "team-a" {
		t.Fatalf("namespace header not sent: %q", seen)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokenFile(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	dir := t.TempDir()
	t.Setenv("VAULT_TOKEN", "")
	c := connect(t, v, vault.TokenAuth{File: writeFile(t, dir, "token", v.Token+"\n")})
	if _, err := c.Read(context.Background(), ref(t, "secret/data/app#password")); err != nil {
		t.Fatal(err)
	}
	_, err := vault.Connect(context.Background(), vault.Config{Address: v.Addr, Auth: vault.TokenAuth{File: filepath.Join(dir, "missing")}})
	wantErr(t, err, fail.Usage, "token file")
}

func TestTLS(t *testing.T) {
	ctx := context.Background()
	certs := t.TempDir()
	v := vaulttest.StartTLS(t, certs)
	t.Setenv("VAULT_TOKEN", v.Token)
	t.Setenv("VAULT_CACERT", "")
	t.Setenv("VAULT_SKIP_VERIFY", "")
	ca := filepath.Join(certs, "vault-ca.pem")
	// Without the CA the server's certificate is refused.
	_, err := vault.Connect(ctx, vault.Config{Address: v.Addr})
	wantErr(t, err, fail.Unavailable, "certificate")
	// With the CA file it works; the server name can be set apart from the
	// address (the dev certificate is for localhost and 127.0.0.1).
	c, err := vault.Connect(ctx, vault.Config{Address: v.Addr, CACert: ca, TLSServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = vault.Connect(ctx, vault.Config{Address: v.Addr, CACert: ca, TLSServerName: "vault.example.com"})
	wantErr(t, err, fail.Unavailable, "vault.example.com")
	// A client certificate is loaded and presented (the dev listener does
	// not require one); a missing one is a usage error.
	c, err = vault.Connect(ctx, vault.Config{Address: v.Addr, CACert: ca, ClientCert: filepath.Join(certs, "vault-cert.pem"), ClientKey: filepath.Join(certs, "vault-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = vault.Connect(ctx, vault.Config{Address: v.Addr, CACert: ca, ClientCert: filepath.Join(certs, "nope.pem"), ClientKey: filepath.Join(certs, "nope-key.pem")})
	wantErr(t, err, fail.Usage, "TLS")
	// VAULT_CACERT from the environment, as the Vault CLI reads it.
	t.Setenv("VAULT_CACERT", ca)
	c, err = vault.Connect(ctx, vault.Config{Address: v.Addr})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// A logical path with parameters is a write: PKI issues a certificate.
func TestPKIIssueWithParameters(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "secrets", "enable", "pki")
	v.Run(t, "write", "pki/root/generate/internal", "common_name=test-root", "ttl=24h")
	v.Run(t, "write", "pki/roles/web", "allowed_domains=example.com", "allow_subdomains=true", "max_ttl=1h")
	c := connect(t, v, nil)
	s, err := c.Read(ctx, ref(t, "pki/issue/web?common_name=a.example.com&ttl=10m#certificate"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := s.Value()
	if err != nil || !strings.HasPrefix(cert, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("certificate %q %v", cert, err)
	}
	if key, _ := s.Field("private_key"); !strings.Contains(key, "PRIVATE KEY") {
		t.Fatal("no private key in the response")
	}
	_, err = c.Read(ctx, ref(t, "pki/issue/web?common_name=evil.org"))
	wantErr(t, err, fail.Usage, "pki/issue/web", "evil.org")
}

// A computed reference (a path a template built while rendering, maybe
// from a secret's value) never shows its path in an error, whatever said
// it: Vault quoting the route, a denial, or the HTTP client quoting the URL
// of an unreachable Vault. The error keeps its kind and says "a computed
// path".
func TestComputedPathsStayOutOfErrors(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	const frag = "Hv3nK7-built-from-a-secret"
	computed := func(path string) vault.Ref { return vault.Ref{Path: path, Computed: true} }
	noFrag := func(what string, err error, kind fail.Kind) {
		t.Helper()
		wantErr(t, err, kind, "a computed path")
		for _, f := range redact.Forms(frag) {
			if strings.Contains(err.Error(), f) {
				t.Fatalf("%s: the error shows the computed path (%q): %v", what, f, err)
			}
		}
	}
	c := connect(t, v, nil)
	_, err := c.Read(ctx, computed(frag+"/x"))
	noFrag("a mount Vault has no route for", err, fail.NotFound)
	_, err = c.Read(ctx, computed("secret/data/"+frag))
	noFrag("a KV path with nothing there", err, fail.NotFound)
	_, errs := c.ReadMany(ctx, []vault.Ref{computed("secret/data/" + frag)}, 1)
	noFrag("ReadMany", errs, fail.NotFound)

	weak, err := v.Client(t).Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", weak.Auth.ClientToken)
	denied, err := vault.Connect(ctx, vault.Config{Address: v.Addr})
	if err != nil {
		t.Fatal(err)
	}
	defer denied.Close()
	_, err = denied.Read(ctx, computed("secret/data/"+frag))
	noFrag("a denied read", err, fail.Denied)
	if _, err := denied.MayRequest(ctx, computed("secret/data/"+frag)); err != nil {
		noFrag("MayRequest", err, fail.KindOf(err))
	}

	// A parameter built from a secret, which Vault quotes back in its
	// error ("common name ... not allowed by this role"). Failed on
	// c5e921c: only the path was scrubbed.
	v.Run(t, "secrets", "enable", "pki")
	v.Run(t, "write", "pki/root/generate/internal", "common_name=test-root", "ttl=24h")
	v.Run(t, "write", "pki/roles/web", "allowed_domains=example.com", "allow_subdomains=true", "max_ttl=1h", "allowed_other_sans=1.3.6.1.4.1.311.20.2.3;UTF8:ok@example.com")
	cn := strings.ToLower(frag) + ".not-allowed.test"
	_, err = c.Read(ctx, vault.Ref{Path: "pki/issue/web", Params: map[string]string{"common_name": cn}, Computed: true})
	if err == nil {
		t.Fatal("Vault issued a certificate for a name its role does not allow")
	}
	for _, f := range redact.Forms(cn) {
		if strings.Contains(err.Error(), f) {
			t.Fatalf("a computed parameter reached the error (%q): %v", f, err)
		}
	}
	if !strings.Contains(err.Error(), "a computed path") {
		t.Fatalf("want the error to say a computed path: %v", err)
	}
	// One element of a list parameter, which Vault quotes alone (found by
	// review): alt_names and ip_sans.
	for param, value := range map[string]string{
		"alt_names":  "ok.example.com, " + cn,
		"ip_sans":    "not-an-ip-" + strings.ToLower(frag),
		"other_sans": "1.3.6.1.4.1.311.20.2.3;UTF8:" + strings.ToLower(frag) + "@example.com",
	} {
		_, err = c.Read(ctx, vault.Ref{Path: "pki/issue/web", Params: map[string]string{"common_name": "ok.example.com", param: value}, Computed: true})
		if err == nil {
			t.Fatalf("Vault issued a certificate with %s=%s", param, value)
		}
		for _, f := range redact.Forms(strings.ToLower(frag)) {
			if strings.Contains(err.Error(), f) {
				t.Fatalf("an element of the computed parameter %s reached the error (%q): %v", param, f, err)
			}
		}
	}

	// A literal reference still names its path.
	_, err = c.Read(ctx, ref(t, "secret/data/"+frag))
	wantErr(t, err, fail.NotFound, "secret/data/"+frag)

	v.Stop()
	_, err = c.Read(ctx, computed("secret/data/"+frag))
	noFrag("an unreachable Vault", err, fail.Unavailable)
	if !fail.KindOf(err).Retryable() {
		t.Fatalf("an unreachable Vault must stay retryable: %v", err)
	}
}
