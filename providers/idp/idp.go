// Package idp owns getting access tokens from OAuth 2.0 token endpoints:
// discovery, client authentication (client_secret_basic and _post,
// private_key_jwt, mTLS), the client_credentials grant, the token's
// lifetime, and the IdP's errors made safe to show.
package idp

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/loopback"
)

// The client authentication methods (OpenID Connect Core 9, RFC 8705).
const (
	// None sends only client_id: for a token exchange whose subject token
	// is the credential (a Kubernetes service-account token, say).
	None              = "none"
	ClientSecretBasic = "client_secret_basic"
	ClientSecretPost  = "client_secret_post"
	PrivateKeyJWT     = "private_key_jwt"
	TLSClientAuth     = "tls_client_auth"
)

// Methods lists the client authentication methods, for messages.
var Methods = []string{ClientSecretBasic, ClientSecretPost, PrivateKeyJWT, TLSClientAuth, None}

// The token exchange grant and token types (RFC 8693).
const (
	GrantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
)

// MaxTokenLen bounds an access token the broker accepts from an IdP.
const MaxTokenLen = 64 << 10

// Source is one configured token: where to ask, as whom, for what. Its
// credentials are values the broker already fetched (never paths a file
// chose).
type Source struct {
	// Name is the token entry's name, for messages.
	Name string
	// Issuer is an OpenID issuer whose discovery document names the token
	// endpoint; TokenURL names it directly. One is set.
	Issuer, TokenURL string
	// AuthMethod is one of Methods.
	AuthMethod   string
	ClientID     string
	ClientSecret string
	// PrivateKeyPEM signs the private_key_jwt assertion; KeyID names it in
	// the assertion's header (optional).
	PrivateKeyPEM []byte
	KeyID         string
	// ClientCert is the certificate (and key) of tls_client_auth.
	ClientCert *tls.Certificate
	// RootCAs, when set, replaces the system roots for the IdP.
	RootCAs *x509.CertPool
	Scopes  []string
	// Audience and Resource (RFC 8707) are sent when set; Params are
	// further form parameters.
	Audience, Resource string
	Params             map[string]string
	// SubjectToken, when set, makes the request a token exchange (RFC
	// 8693) of this token, of SubjectTokenType, for RequestedTokenType
	// (optional).
	SubjectToken, SubjectTokenType, RequestedTokenType string
	// Timeout bounds one request (default 30 s).
	Timeout time.Duration
}

// Token is an access token and what the IdP said of it.
type Token struct {
	AccessToken string
	TokenType   string
	// Scope is the granted scope, when the IdP names it.
	Scope string
	// IssuedAt is when the broker received it; Expiry when it ends
	// (Lifetime's rule when the IdP gave none).
	IssuedAt time.Time
	Expiry   time.Time
	// LifetimeGuessed is set when the IdP gave no lifetime.
	LifetimeGuessed bool
}

// Lifetime is the token's whole lifetime.
func (t *Token) Lifetime() time.Duration { return t.Expiry.Sub(t.IssuedAt) }

// Expired reports whether the token's expiry has passed at now.
func (t *Token) Expired(now time.Time) bool { return !now.Before(t.Expiry) }

// CheckURL says whether u may carry client credentials and tokens: HTTPS,
// or plain HTTP on a loopback address only. what names the setting.
func CheckURL(u, what string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return fail.Mark(fail.Usage, fmt.Errorf("%s: %q is not an absolute URL: give https://HOST/PATH", what, u))
	}
	if p.User != nil {
		return fail.Mark(fail.Usage, fmt.Errorf("%s: the URL carries a user name or password; put credentials in client_id and client_secret", what))
	}
	switch p.Scheme {
	case "https":
		return nil
	case "http":
		if loopback.Host(p.Hostname()) {
			return nil
		}
		return fail.Mark(fail.Usage, fmt.Errorf("%s: %s is plain HTTP; a token endpoint receives the client's credentials and returns tokens, so use https:// (plain http is allowed only on loopback)", what, p.Redacted()))
	}
	return fail.Mark(fail.Usage, fmt.Errorf("%s: scheme %q is not https", what, p.Scheme))
}

// Client fetches tokens for one Source: it holds the HTTP client and the
// token endpoint found by discovery.
type Client struct {
	src  Source
	http *http.Client
	now  func() time.Time

	mu       sync.Mutex
	tokenURL string // discovered once
}

// New checks src and makes its client. Nothing is contacted.
func New(src Source) (*Client, error) {
	what := "tokens." + src.Name
	if (src.Issuer == "") == (src.TokenURL == "") {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("%s: give issuer (discovery) or token_url, not both and not neither", what))
	}
	if src.Issuer != "" {
		if err := CheckURL(src.Issuer, what+".issuer"); err != nil {
			return nil, err
		}
	} else if err := CheckURL(src.TokenURL, what+".token_url"); err != nil {
		return nil, err
	}
	if src.ClientID == "" {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("%s: client_id is empty", what))
	}
	switch src.AuthMethod {
	case ClientSecretBasic, ClientSecretPost:
		if src.ClientSecret == "" {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("%s: auth %s needs client_secret", what, src.AuthMethod))
		}
	case PrivateKeyJWT:
		if len(src.PrivateKeyPEM) == 0 {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("%s: auth private_key_jwt needs private_key", what))
		}
	case TLSClientAuth:
		if src.ClientCert == nil {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("%s: auth tls_client_auth needs client_cert and client_key", what))
		}
	case None:
		if src.SubjectToken == "" {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("%s: auth none is for a token exchange; give exchange.subject_token or a client credential", what))
		}
	default:
		return nil, fail.Mark(fail.Usage, fmt.Errorf("%s: auth %q is not one of %s", what, src.AuthMethod, strings.Join(Methods, ", ")))
	}
	if src.Timeout <= 0 {
		src.Timeout = 30 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// tr.Proxy stays http.ProxyFromEnvironment: a hosted IdP is often
	// reached through the egress proxy HTTPS_PROXY names (TLS runs end to
	// end through it), as Vault's client does.
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: src.RootCAs}
	tr.MaxResponseHeaderBytes = maxHeaderBytes
	if src.ClientCert != nil {
		cert := src.ClientCert
		tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	hc := &http.Client{Transport: boundedBodies{tr}, Timeout: src.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // credentials are never replayed to where a redirect points
	}}
	return &Client{src: src, http: hc, tokenURL: src.TokenURL, now: time.Now}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Fetch asks the token endpoint for a new token: client_credentials, or
// a token exchange of Source.SubjectToken.
func (c *Client) Fetch(ctx context.Context) (*Token, error) {
	return c.FetchFor(ctx, c.src.SubjectToken)
}

// FetchFor is Fetch exchanging subjectToken (a subject that changes with
// every refresh of its source keeps one client and one discovery).
func (c *Client) FetchFor(ctx context.Context, subjectToken string) (*Token, error) {
	what := "tokens." + c.src.Name
	c.mu.Lock()
	tokenURL := c.tokenURL
	c.mu.Unlock()
	if tokenURL == "" {
		u, err := c.discover(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		c.tokenURL, tokenURL = u, u
		c.mu.Unlock()
	}
	params := url.Values{}
	for k, v := range c.src.Params {
		params.Set(k, v)
	}
	if c.src.Audience != "" {
		params.Set("audience", c.src.Audience)
	}
	if c.src.Resource != "" {
		params.Set("resource", c.src.Resource)
	}
	cc := clientcredentials.Config{ClientID: c.src.ClientID, TokenURL: tokenURL, Scopes: c.src.Scopes, EndpointParams: params}
	var secrets []string
	switch c.src.AuthMethod {
	case ClientSecretBasic:
		cc.ClientSecret, cc.AuthStyle = c.src.ClientSecret, oauth2.AuthStyleInHeader
		secrets = append(secrets, sentForms(c.src.ClientSecret)...)
		// The Authorization header as sent, should an IdP echo it.
		basic := url.QueryEscape(c.src.ClientID) + ":" + url.QueryEscape(c.src.ClientSecret)
		secrets = append(secrets, basic, base64.StdEncoding.EncodeToString([]byte(basic)))
	case ClientSecretPost:
		cc.ClientSecret, cc.AuthStyle = c.src.ClientSecret, oauth2.AuthStyleInParams
		secrets = append(secrets, sentForms(c.src.ClientSecret)...)
	case PrivateKeyJWT:
		assertion, err := c.assertion(tokenURL)
		if err != nil {
			return nil, err
		}
		params.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		params.Set("client_assertion", assertion)
		cc.AuthStyle = oauth2.AuthStyleInParams
		secrets = append(secrets, sentForms(assertion)...)
	case TLSClientAuth, None:
		cc.AuthStyle = oauth2.AuthStyleInParams
	}
	if subjectToken != "" {
		params.Set("grant_type", GrantTokenExchange)
		params.Set("subject_token", subjectToken)
		params.Set("subject_token_type", cmp.Or(c.src.SubjectTokenType, TokenTypeAccessToken))
		if c.src.RequestedTokenType != "" {
			params.Set("requested_token_type", c.src.RequestedTokenType)
		}
		secrets = append(secrets, sentForms(subjectToken)...)
	}
	sent := c.now()
	tok, err := cc.Token(context.WithValue(ctx, oauth2.HTTPClient, c.http))
	if err != nil {
		return nil, c.explain(err, secrets)
	}
	t, err := c.accept(tok, sent)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return t, nil
}

// accept checks a token response's shape and works out its expiry.
func (c *Client) accept(tok *oauth2.Token, sent time.Time) (*Token, error) {
	if tok.AccessToken == "" || len(tok.AccessToken) > MaxTokenLen || !printable(tok.AccessToken) {
		return nil, fail.Mark(fail.Format, fmt.Errorf("the IdP's access_token is empty, longer than %d bytes or not printable ASCII: refused (its text is not shown)", MaxTokenLen))
	}
	if tt := tok.TokenType; tt != "" && (len(tt) > 64 || !printable(tt)) {
		return nil, fail.Mark(fail.Format, errors.New("the IdP's token_type is not a short printable word: refused"))
	}
	t := &Token{AccessToken: tok.AccessToken, TokenType: tok.TokenType, IssuedAt: sent}
	if s, ok := tok.Extra("scope").(string); ok && len(s) <= 4096 && printable(s) {
		t.Scope = s
	}
	lifetime, guessed, err := Lifetime(expiresIn(tok))
	if err != nil {
		return nil, err
	}
	t.Expiry, t.LifetimeGuessed = sent.Add(lifetime), guessed
	if !c.now().Before(t.Expiry) {
		return nil, fail.Mark(fail.Unavailable, fmt.Errorf("the IdP's token had expired when its answer arrived (expires_in %s, the request took longer): refused, asking again later", lifetime))
	}
	return t, nil
}

// The lifetime rule (docs/tokens.md). The expiry counts from when the
// request was sent, so that the time on the wire is never counted in the
// token's favour.
const (
	// GuessedLifetime is assumed when expires_in is missing or 0.
	GuessedLifetime = 5 * time.Minute
	// MaxLifetime caps a longer expires_in: the token is refreshed at
	// least this often.
	MaxLifetime = 24 * time.Hour
)

// Lifetime applies the rule to an expires_in in seconds: missing or 0 is
// GuessedLifetime (guessed true), negative is refused, above MaxLifetime
// is MaxLifetime.
func Lifetime(expiresIn int64) (d time.Duration, guessed bool, err error) {
	switch {
	case expiresIn == 0:
		return GuessedLifetime, true, nil
	case expiresIn < 0:
		return 0, false, fail.Mark(fail.Format, fmt.Errorf("the IdP's expires_in is negative (%d): the token is refused", expiresIn))
	case expiresIn > int64(MaxLifetime/time.Second):
		return MaxLifetime, false, nil
	}
	return time.Duration(expiresIn) * time.Second, false, nil
}

// expiresIn reads expires_in from the response as sent (a JSON number, or
// a string as some IdPs send it); 0 when absent or unreadable.
func expiresIn(tok *oauth2.Token) int64 {
	switch v := tok.Extra("expires_in").(type) {
	case int64: // a form-encoded answer
		return min(max(v, math.MinInt32), math.MaxInt32)
	case float64:
		if v > math.MaxInt32 {
			return math.MaxInt32
		}
		if v < math.MinInt32 {
			return math.MinInt32
		}
		return int64(v)
	case string:
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

// sentForms are the forms a credential takes on the wire: as it is, and
// form-encoded (a body or Basic user-info an IdP might echo).
func sentForms(s string) []string {
	if q := url.QueryEscape(s); q != s {
		return []string{s, q}
	}
	return []string{s}
}

// Bounds on what a token endpoint or discovery answers.
const (
	maxHeaderBytes = 64 << 10
	maxBodyBytes   = 256 << 10
)

// boundedBodies cuts every response body at maxBodyBytes: a longer one
// fails to read (and so to parse) instead of being decoded whole.
type boundedBodies struct{ rt http.RoundTripper }

func (b boundedBodies) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.rt.RoundTrip(r)
	if err == nil {
		resp.Body = &limitedBody{ReadCloser: resp.Body, left: maxBodyBytes}
	}
	return resp, err
}

type limitedBody struct {
	io.ReadCloser
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errors.New("the answer is longer than 256 KiB")
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.ReadCloser.Read(p)
	l.left -= int64(n)
	return n, err
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
