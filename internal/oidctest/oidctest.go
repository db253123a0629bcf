// Package oidctest starts a real OpenID provider for tests: zitadel's
// pkg/op on a loopback TLS port, with an in-memory storage of its own for
// the client_credentials grant (JWT access tokens signed with the key its
// JWKS publishes, a lifetime per client, clients revoked at runtime), and
// switches to make the token endpoint fail (429 or 503 with Retry-After,
// or no answer at all).
//
// zitadel authenticates clients by secret; private_key_jwt assertions and
// TLS client certificates are checked here, in front of it, against the
// key or certificate registered for the client, and the request then
// reaches zitadel as that client.
package oidctest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Client is a client registered with the provider.
type Client struct {
	ID, Secret string
	// Lifetime of its access tokens (default 1 h).
	Lifetime time.Duration
	// Scopes it may ask for (any when empty).
	Scopes []string
	// PublicKey checks its private_key_jwt assertions.
	PublicKey crypto.PublicKey
	// CertSHA256 is the hex SHA-256 of its TLS client certificate (DER);
	// or CertCAs and CertCN: a certificate with that common name issued by
	// one of these CAs (RFC 8705's PKI method).
	CertSHA256 string
	CertCAs    *x509.CertPool
	CertCN     string
}

// Request is what the token endpoint received, without credentials.
type Request struct {
	ClientID string
	Method   string // how the client authenticated
	Form     url.Values
	At       time.Time
}

// Provider is a running OpenID provider.
type Provider struct {
	Issuer string
	// CAPool trusts the provider's TLS certificate; CAPEM is it in PEM.
	CAPool *x509.CertPool
	CAPEM  []byte

	srv   *httptest.Server
	store *store

	mu       sync.Mutex
	requests []Request
	failures []failure
	down     atomic.Bool
}

type failure struct {
	status     int
	retryAfter string
}

// TB is what Start needs of a test (testing.TB has it; bench/tokenfleet
// gives its own).
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Start starts a provider with the clients given; it stops with the test.
func Start(t TB, clients ...Client) *Provider {
	t.Helper()
	p := &Provider{store: &store{
		Storage: storage.NewStorageWithClients(storage.NewUserStore("https://unused"), map[string]*storage.Client{}),
		clients: map[string]*Client{}, issued: map[string]issued{},
	}}
	for _, c := range clients {
		p.AddClient(c)
	}
	p.srv = httptest.NewUnstartedServer(nil)
	p.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	p.Issuer = "https://" + p.srv.Listener.Addr().String()
	var key [32]byte
	rand.Read(key[:])
	provider, err := op.NewProvider(&op.Config{CryptoKey: key, GrantTypeRefreshToken: false}, p.store, op.StaticIssuer(p.Issuer), op.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatalf("oidctest: the OpenID provider did not start: %v", err)
	}
	p.srv.Config.Handler = p.front(provider)
	p.srv.StartTLS()
	t.Cleanup(p.srv.Close)
	p.CAPool = x509.NewCertPool()
	p.CAPool.AddCert(p.srv.Certificate())
	p.CAPEM = pemCert(p.srv.Certificate().Raw)
	return p
}

// TokenURL is the token endpoint.
func (p *Provider) TokenURL() string { return p.Issuer + "/oauth/token" }

// AddClient registers (or replaces) a client.
func (p *Provider) AddClient(c Client) {
	if c.Lifetime == 0 {
		c.Lifetime = time.Hour
	}
	if c.Secret == "" {
		// private_key_jwt and mTLS clients get a secret only this package
		// knows, presented to zitadel once the front has checked them.
		b := make([]byte, 16)
		rand.Read(b)
		c.Secret = "internal-" + hex.EncodeToString(b)
	}
	p.store.mu.Lock()
	p.store.clients[c.ID] = &c
	p.store.mu.Unlock()
}

// Revoke removes a client: its requests get invalid_client from then on,
// as a wrong secret does; tokens it already has stay valid.
func (p *Provider) Revoke(id string) {
	p.store.mu.Lock()
	delete(p.store.clients, id)
	p.store.mu.Unlock()
}

// FailNext makes the next token requests answer status with the
// Retry-After header given ("" for none), one request per call.
func (p *Provider) FailNext(status int, retryAfter string) {
	p.mu.Lock()
	p.failures = append(p.failures, failure{status, retryAfter})
	p.mu.Unlock()
}

// SetDown makes every request fail without an answer (the connection is
// closed), as a provider that is down.
func (p *Provider) SetDown(down bool) { p.down.Store(down) }

// Requests returns what the token endpoint received so far.
func (p *Provider) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

// Issued counts the access tokens issued.
func (p *Provider) Issued() int {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return len(p.store.issued)
}

// Verify checks an access token as a resource server would: signature by
// the key at the provider's JWKS, issuer, expiry. It returns its claims.
func (p *Provider) Verify(ctx context.Context, token string) (*oidc.AccessTokenClaims, error) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.CAPool}}}
	keys := rp.NewRemoteKeySet(hc, p.Issuer+"/keys")
	return op.VerifyAccessToken[*oidc.AccessTokenClaims](ctx, token, op.NewAccessTokenVerifier(p.Issuer, keys))
}

// front records token requests, injects failures, and authenticates
// private_key_jwt and mTLS clients before zitadel sees the request.
func (p *Provider) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path != "/oauth/token" {
			next.ServeHTTP(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		method, clientID := "client_secret_post", r.PostForm.Get("client_id")
		if id, _, ok := r.BasicAuth(); ok {
			method, clientID = "client_secret_basic", id
			if u, err := url.QueryUnescape(id); err == nil {
				clientID = u
			}
		}
		p.mu.Lock()
		var fail *failure
		if len(p.failures) > 0 {
			fail = &p.failures[0]
			p.failures = p.failures[1:]
		}
		p.mu.Unlock()
		if r.PostForm.Get("client_assertion_type") != "" {
			method = "private_key_jwt"
			id, err := p.store.checkAssertion(r.PostForm.Get("client_assertion"), p.TokenURL())
			if err != nil {
				oauthError(w, http.StatusUnauthorized, "invalid_client", err.Error())
				p.record(Request{ClientID: clientID, Method: method, Form: clean(r.PostForm), At: time.Now()})
				return
			}
			clientID = id
			p.present(r, id)
		} else if method == "client_secret_post" && r.PostForm.Get("client_secret") == "" && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			method = "tls_client_auth"
			leaf := r.TLS.PeerCertificates[0]
			sum := sha256.Sum256(leaf.Raw)
			c := p.store.client(clientID)
			switch {
			case c == nil:
			case c.CertSHA256 != "" && c.CertSHA256 == hex.EncodeToString(sum[:]):
				p.present(r, clientID)
			case c.CertCAs != nil && leaf.Subject.CommonName == c.CertCN:
				inter := x509.NewCertPool()
				for _, ic := range r.TLS.PeerCertificates[1:] {
					inter.AddCert(ic)
				}
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.CertCAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
					p.present(r, clientID)
				}
			}
		}
		p.record(Request{ClientID: clientID, Method: method, Form: clean(r.PostForm), At: time.Now()})
		if fail != nil {
			if fail.retryAfter != "" {
				w.Header().Set("Retry-After", fail.retryAfter)
			}
			oauthError(w, fail.status, "temporarily_unavailable", "try later")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// present makes the request reach zitadel as client id, authenticated.
func (p *Provider) present(r *http.Request, id string) {
	c := p.store.client(id)
	if c == nil {
		return
	}
	for _, k := range []string{"client_assertion", "client_assertion_type"} {
		r.PostForm.Del(k)
		r.Form.Del(k)
	}
	for _, f := range []url.Values{r.PostForm, r.Form} {
		f.Set("client_id", id)
		f.Set("client_secret", c.Secret)
	}
}

func (p *Provider) record(req Request) {
	p.mu.Lock()
	p.requests = append(p.requests, req)
	p.mu.Unlock()
}

func clean(f url.Values) url.Values {
	out := url.Values{}
	for k, v := range f {
		if k != "client_secret" && k != "client_assertion" {
			out[k] = slices.Clone(v)
		}
	}
	return out
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, code, desc)
}

// checkAssertion verifies a private_key_jwt assertion: signed by the key
// registered for its issuer, issuer and subject the same client, audience
// the token endpoint (or the issuer), not expired.
func (s *store) checkAssertion(raw, tokenURL string) (string, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384, jose.EdDSA})
	if err != nil {
		return "", fmt.Errorf("assertion does not parse")
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return "", fmt.Errorf("assertion claims do not parse")
	}
	c := s.client(unverified.Issuer)
	if c == nil || c.PublicKey == nil {
		return "", fmt.Errorf("no key registered for the assertion's issuer")
	}
	var claims jwt.Claims
	if err := tok.Claims(c.PublicKey, &claims); err != nil {
		return "", fmt.Errorf("assertion signature does not verify")
	}
	if claims.Subject != claims.Issuer {
		return "", fmt.Errorf("assertion subject is not its issuer")
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: c.ID, AnyAudience: jwt.Audience{tokenURL, strings.TrimSuffix(tokenURL, "/oauth/token")}, Time: time.Now()}, 5*time.Second); err != nil {
		return "", fmt.Errorf("assertion claims: %v", err)
	}
	return c.ID, nil
}
