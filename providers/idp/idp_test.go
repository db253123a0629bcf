package idp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/oidctest"
	"github.com/secrets-broker/secrets-broker/internal/redact"
	"github.com/secrets-broker/secrets-broker/providers/idp"
)

const secret = "cs-Q7v2-very-secret-value"

func fetch(t *testing.T, src idp.Source) (*idp.Token, error) {
	t.Helper()
	c, err := idp.New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.Fetch(context.Background())
}

// A token got with each way of authenticating the client is issued by the
// OP, verifies against its JWKS, and the request carried what was
// configured (scopes, audience, resource, extra parameters).
func TestEachClientAuthenticationGetsAVerifiedToken(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	cert := selfSigned(t)
	sum := sha256.Sum256(cert.Certificate[0])
	op := oidctest.Start(t,
		oidctest.Client{ID: "svc", Secret: secret, Scopes: []string{"read", "write"}},
		oidctest.Client{ID: "jwt-svc", PublicKey: &ecKey.PublicKey},
		oidctest.Client{ID: "mtls-svc", CertSHA256: hex.EncodeToString(sum[:])},
	)
	base := idp.Source{Name: "api", Issuer: op.Issuer, RootCAs: op.CAPool, ClientID: "svc", ClientSecret: secret}
	for _, tc := range []struct {
		name string
		src  func(idp.Source) idp.Source
		sub  string
	}{
		{"client_secret_basic", func(s idp.Source) idp.Source { s.AuthMethod = idp.ClientSecretBasic; return s }, "svc"},
		{"client_secret_post", func(s idp.Source) idp.Source {
			s.AuthMethod, s.Issuer, s.TokenURL = idp.ClientSecretPost, "", op.TokenURL()
			return s
		}, "svc"},
		{"private_key_jwt", func(s idp.Source) idp.Source {
			s.AuthMethod, s.ClientID, s.ClientSecret, s.PrivateKeyPEM, s.KeyID = idp.PrivateKeyJWT, "jwt-svc", "", keyPEM, "k1"
			return s
		}, "jwt-svc"},
		{"tls_client_auth", func(s idp.Source) idp.Source {
			s.AuthMethod, s.ClientID, s.ClientSecret, s.ClientCert = idp.TLSClientAuth, "mtls-svc", "", &cert
			return s
		}, "mtls-svc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src(base)
			src.Scopes = []string{"read"}
			src.Audience, src.Resource, src.Params = "https://api.example", "https://api.example/v1", map[string]string{"tenant": "t1"}
			if tc.sub != "svc" {
				src.Scopes = nil
			}
			before := len(op.Requests())
			tok, err := fetch(t, src)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := op.Verify(context.Background(), tok.AccessToken)
			if err != nil {
				t.Fatalf("the OP does not accept the token: %v", err)
			}
			if claims.Subject != tc.sub {
				t.Errorf("token subject %q, want %q", claims.Subject, tc.sub)
			}
			if life := tok.Lifetime(); life < 59*time.Minute || life > time.Hour || tok.LifetimeGuessed {
				t.Errorf("lifetime %v (guessed %v), want the OP's hour", life, tok.LifetimeGuessed)
			}
			reqs := op.Requests()[before:]
			if len(reqs) != 1 || reqs[0].Method != tc.name {
				t.Fatalf("the OP saw %+v, want one %s request", reqs, tc.name)
			}
			f := reqs[0].Form
			if f.Get("audience") != src.Audience || f.Get("resource") != src.Resource || f.Get("tenant") != "t1" || f.Get("grant_type") != "client_credentials" {
				t.Errorf("the request's form lacks what was configured: %v", f)
			}
		})
	}
}

// Refusals name the token entry and the IdP's error code, say what to
// check, are classed for the exit code, and never carry the secret.
func TestRefusalsAreClearAndCarryNoSecret(t *testing.T) {
	op := oidctest.Start(t, oidctest.Client{ID: "svc", Secret: secret, Scopes: []string{"read"}})
	src := idp.Source{Name: "api", TokenURL: op.TokenURL(), RootCAs: op.CAPool, ClientID: "svc", ClientSecret: "wrong-" + secret, AuthMethod: idp.ClientSecretPost}
	check := func(what string, err error, kind fail.Kind, says ...string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if fail.KindOf(err) != kind {
			t.Errorf("%s: class %s, want %s: %v", what, fail.KindOf(err), kind, err)
		}
		for _, s := range append(says, "tokens.api") {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", what, err, s)
			}
		}
		for _, f := range redact.Forms(secret) {
			if strings.Contains(err.Error(), f) {
				t.Errorf("%s: the error carries the secret: %v", what, err)
			}
		}
	}
	_, err := fetch(t, src)
	check("wrong secret", err, fail.Denied, "invalid_client", "check client_id")
	src.ClientSecret = secret
	src.Scopes = []string{"admin"}
	_, err = fetch(t, src)
	check("a scope not allowed", err, fail.Denied, "invalid_scope")
	src.Scopes = nil
	op.Revoke("svc")
	_, err = fetch(t, src)
	check("a revoked client", err, fail.Denied, "invalid_client")

	op.AddClient(oidctest.Client{ID: "svc", Secret: secret})
	op.FailNext(http.StatusTooManyRequests, "7")
	_, err = fetch(t, src)
	check("rate limited", err, fail.Unavailable, "HTTP 429", "rate limiting")
	if got := idp.RetryAfterOf(err); got != 7*time.Second {
		t.Errorf("Retry-After read as %v, want 7s", got)
	}
	op.SetDown(true)
	_, err = fetch(t, src)
	check("down", err, fail.Unavailable, "token endpoint")
	op.SetDown(false)
}

// Token endpoints and issuers must be HTTPS; plain HTTP is refused with a
// clear error except on loopback.
func TestPlainHTTPIsRefusedExceptOnLoopback(t *testing.T) {
	for u, ok := range map[string]bool{
		"https://idp.example/oauth/token": true,
		"http://127.0.0.1:8080/token":     true,
		"http://[::1]:8080/token":         true,
		"http://localhost/token":          true,
		"http://idp.example/oauth/token":  false,
		"http://10.0.0.1/token":           false,
		"ftp://idp.example/token":         false,
		"https://user:pw@idp.example/t":   false,
		"idp.example/token":               false,
	} {
		err := idp.CheckURL(u, "tokens.api.token_url")
		if (err == nil) != ok {
			t.Errorf("%s: %v", u, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "tokens.api.token_url") || strings.Contains(err.Error(), "pw@")) {
			t.Errorf("%s: the error does not name the setting or shows a password: %v", u, err)
		}
	}
	if _, err := idp.New(idp.Source{Name: "api", TokenURL: "http://idp.example/token", ClientID: "c", ClientSecret: "s", AuthMethod: idp.ClientSecretBasic}); err == nil || !strings.Contains(err.Error(), "use https://") || fail.KindOf(err) != fail.Usage {
		t.Errorf("New with an http token_url: %v", err)
	}
}

// The lifetime rule: missing or 0 is a guessed 5 minutes, negative is
// refused, more than a day is a day.
func TestLifetimeRule(t *testing.T) {
	for in, want := range map[int64]time.Duration{0: idp.GuessedLifetime, 1: time.Second, 3600: time.Hour, 10 * 365 * 86400: idp.MaxLifetime} {
		got, guessed, err := idp.Lifetime(in)
		if err != nil || got != want || guessed != (in == 0) {
			t.Errorf("Lifetime(%d) = %v %v %v, want %v", in, got, guessed, err, want)
		}
	}
	if _, _, err := idp.Lifetime(-5); err == nil || fail.KindOf(err) != fail.Format {
		t.Errorf("a negative expires_in: %v", err)
	}
	tok := &idp.Token{IssuedAt: time.Unix(0, 0), Expiry: time.Unix(60, 0)}
	for _, first := range []bool{false, true} {
		from := time.Unix(40, 0)
		if first {
			from = time.Unix(20, 0)
		}
		var early, late bool
		for range 400 {
			at := idp.RefreshAt(tok, first)
			if at.Before(from) || at.After(time.Unix(50, 0)) {
				t.Fatalf("RefreshAt(first %v) = %v, outside %v..50s of a 60 s lifetime", first, at.Sub(time.Unix(0, 0)), from.Sub(time.Unix(0, 0)))
			}
			early = early || at.Before(from.Add(2*time.Second))
			late = late || at.After(time.Unix(48, 0))
		}
		if !early || !late {
			t.Errorf("RefreshAt(first %v) does not spread over its window", first)
		}
	}
}

// A discovery document naming another issuer is refused.
func TestDiscoveryMustNameTheIssuer(t *testing.T) {
	op := oidctest.Start(t, oidctest.Client{ID: "svc", Secret: secret})
	_, err := fetch(t, idp.Source{Name: "api", Issuer: op.Issuer + "/other", RootCAs: op.CAPool, ClientID: "svc", ClientSecret: secret, AuthMethod: idp.ClientSecretBasic})
	if err == nil {
		t.Fatal("a wrong issuer path was accepted")
	}
	var e interface{ FailKind() fail.Kind }
	if !errors.As(err, &e) && fail.KindOf(err) == fail.Internal {
		t.Errorf("unclassed error: %v", err)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mtls-svc"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A token exchange (RFC 8693) trades a token the OP issued for one for
// another audience: the request carries the grant and the subject token's
// type, the new token verifies and names the audience asked for.
func TestTokenExchangeGetsATokenForAnotherAudience(t *testing.T) {
	op := oidctest.Start(t, oidctest.Client{ID: "svc", Secret: secret}, oidctest.Client{ID: "gateway", Secret: "gw-" + secret})
	subject, err := fetch(t, idp.Source{Name: "api", TokenURL: op.TokenURL(), RootCAs: op.CAPool, ClientID: "svc", ClientSecret: secret, AuthMethod: idp.ClientSecretBasic})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := fetch(t, idp.Source{Name: "downstream", TokenURL: op.TokenURL(), RootCAs: op.CAPool, ClientID: "gateway", ClientSecret: "gw-" + secret,
		AuthMethod: idp.ClientSecretBasic, SubjectToken: subject.AccessToken, SubjectTokenType: idp.TokenTypeAccessToken, Audience: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == subject.AccessToken {
		t.Fatal("the exchange returned the subject token")
	}
	claims, err := op.Verify(context.Background(), tok.AccessToken)
	if err != nil {
		t.Fatalf("the exchanged token is refused: %v", err)
	}
	if !slices.Contains(claims.Audience, "orders") {
		t.Errorf("the exchanged token's audience is %v, want orders in it", claims.Audience)
	}
	reqs := op.Requests()
	f := reqs[len(reqs)-1].Form
	if f.Get("grant_type") != idp.GrantTokenExchange || f.Get("subject_token_type") != idp.TokenTypeAccessToken || f.Get("subject_token") == "" {
		t.Errorf("the exchange request's form: %v", f)
	}
	// auth none sends the subject token and the client id, no secret.
	_, err = fetch(t, idp.Source{Name: "sa", TokenURL: op.TokenURL(), RootCAs: op.CAPool, ClientID: "gateway", AuthMethod: idp.None, SubjectToken: "a-service-account-jwt", SubjectTokenType: idp.TokenTypeJWT})
	if err == nil {
		t.Fatal("this OP authenticates every client; an exchange without a secret must be refused")
	}
	reqs = op.Requests()
	if last := reqs[len(reqs)-1]; last.Method != "client_secret_post" || last.Form.Get("client_id") != "gateway" || last.Form.Get("subject_token_type") != idp.TokenTypeJWT {
		t.Errorf("auth none sent %+v", last)
	}
	if strings.Contains(err.Error(), "a-service-account-jwt") {
		t.Errorf("the error carries the subject token: %v", err)
	}
}

// A token endpoint that redirects does not get the credentials replayed
// to where it points: the redirect is an error and the target sees
// nothing.
func TestRedirectsAreNotFollowed(t *testing.T) {
	hit := make(chan struct{}, 1)
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hit <- struct{}{} }))
	defer target.Close()
	front := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/token", http.StatusTemporaryRedirect)
	}))
	defer front.Close()
	pool := x509.NewCertPool()
	pool.AddCert(front.Certificate())
	pool.AddCert(target.Certificate())
	_, err := fetch(t, idp.Source{Name: "api", TokenURL: front.URL + "/token", RootCAs: pool, ClientID: "c", ClientSecret: secret, AuthMethod: idp.ClientSecretBasic})
	if err == nil || !strings.Contains(err.Error(), "HTTP 307") {
		t.Fatalf("a redirect: %v", err)
	}
	select {
	case <-hit:
		t.Fatal("the credentials were replayed to the redirect's target")
	default:
	}
}
