// Package vault owns reading secrets from HashiCorp Vault: the client
// (address, namespace, TLS, the VAULT_* environment as the Vault CLI reads
// it), logging in (token, AppRole, Kubernetes, JWT/OIDC) and keeping the
// broker's own token alive, reading KV v1/v2 and any logical path with one
// request per distinct path, and keeping leased secrets valid (renewing them
// at a jittered point of their remaining time, fetching a fresh one at max
// TTL), and answering whether a kept lease or certificate may be reused.
//
// Errors are *Error values that name the secret reference, the Vault path
// and Vault's message, never a value or a token, and say whether a retry may
// help.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/internal/certreload"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/loopback"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// Config says how to reach Vault. Empty fields take the VAULT_* environment
// variables, as the Vault CLI does (VAULT_ADDR, VAULT_NAMESPACE, VAULT_CACERT,
// VAULT_CAPATH, VAULT_CLIENT_CERT, VAULT_CLIENT_KEY, VAULT_TLS_SERVER_NAME,
// VAULT_SKIP_VERIFY).
type Config struct {
	Address       string
	Namespace     string
	CACert        string
	CAPath        string
	ClientCert    string
	ClientKey     string
	TLSServerName string
	// InsecureHTTP allows a plain-http address that is not loopback (the
	// broker's token and every secret then cross the network in clear);
	// Connect logs a warning each time.
	InsecureHTTP bool
	// Timeout bounds each HTTP request (default 30 s).
	Timeout time.Duration
	// Auth logs in; nil means the token in VAULT_TOKEN.
	Auth Auth
	// Logger receives warnings (failed attempts to log in again); nil
	// discards them.
	Logger *slog.Logger
	// OnLogin, when set, is told of every login attempt and its result
	// (nil: a token was got), for the daemon's metrics.
	OnLogin func(err error)
	// Tokens, when set, keeps the token of every login across restarts: a
	// kept token that Vault still accepts is used instead of logging in,
	// so the leases it holds stay valid. Not used with TokenAuth.
	Tokens TokenStore
}

// MaxTLSFileLen bounds a CA bundle, client certificate or key file.
const MaxTLSFileLen = 1 << 20

// TokenStore keeps the broker's own Vault token (the restart cache).
type TokenStore interface {
	// LoadToken returns the kept token, or "" when there is none.
	LoadToken(ctx context.Context) (string, error)
	// SaveToken keeps the token of a login made as principal (the login's
	// Principal, read before and after it logged in and found the same).
	SaveToken(ctx context.Context, login *api.Secret, principal string) error
}

// Client reads secrets from one Vault.
type Client struct {
	api      *api.Client
	auth     Auth
	tokens   TokenStore
	log      *slog.Logger
	onLogin  func(error)
	logins   atomic.Int64
	requests atomic.Int64

	loginMu sync.Mutex
	stop    context.CancelFunc
	done    chan struct{}

	// principal is whom the current token was got as (Auth.Principal at
	// its login, or at the start for a kept token); "" when unknown.
	principal atomic.Pointer[string]
}

// Principal names whom the client's current token was got as (see
// Auth.Principal), or "" when that is not known (the credential files
// changed while it logged in). The restart cache keeps what a token fetched
// only under this principal.
func (c *Client) Principal() string {
	if p := c.principal.Load(); p != nil {
		return *p
	}
	return ""
}

type countingTransport struct {
	next  http.RoundTripper
	count *atomic.Int64
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.count.Add(1)
	return t.next.RoundTrip(r)
}

// CloseIdleConnections lets a login start a fresh TLS connection (with the
// client certificate as it is now on disk).
func (t countingTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Connect configures a client, logs in, and keeps the broker's own token
// renewed (and re-acquired when it cannot be) until ctx ends or Close.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	vc := api.DefaultConfig()
	if vc.Error != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("vault: bad VAULT_* environment: %w", vc.Error))
	}
	if cfg.Address != "" {
		vc.Address = cfg.Address
	}
	if err := checkAddress(vc.Address); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckTransport(vc.Address, cfg.InsecureHTTP, os.Getenv(api.EnvVaultSkipVerify), log); err != nil {
		return nil, err
	}
	if cfg.Timeout > 0 {
		vc.Timeout = cfg.Timeout
	}
	vc.MaxRetries = 0 // the broker decides about retries, with backoff
	tls := &api.TLSConfig{CACert: cfg.CACert, CAPath: cfg.CAPath, ClientCert: cfg.ClientCert, ClientKey: cfg.ClientKey, TLSServerName: cfg.TLSServerName}
	if err := checkTLSFiles(cfg); err != nil {
		return nil, err
	}
	if cfg.CACert != "" || cfg.CAPath != "" || cfg.ClientCert != "" || cfg.ClientKey != "" || cfg.TLSServerName != "" {
		if err := vc.ConfigureTLS(tls); err != nil {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("vault: TLS settings: %w", err))
		}
	}
	if cfg.ClientCert != "" && cfg.ClientKey != "" {
		// The client certificate is read again whenever its files change
		// (a PKI agent rotates it), at the next connection: cert auth's
		// logins start a fresh one (see CertAuth).
		pair := certreload.New(cfg.ClientCert, cfg.ClientKey)
		if _, err := pair.Load(); err != nil {
			return nil, fmt.Errorf("vault: TLS settings: vault.client_cert: %w", err)
		}
		if t, ok := vc.HttpClient.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
			t.TLSClientConfig.Certificates = nil
			t.TLSClientConfig.GetClientCertificate = pair.ClientCertificate
		}
	}
	c := &Client{auth: cfg.Auth, log: log, tokens: cfg.Tokens, onLogin: cfg.OnLogin}
	vc.HttpClient.Transport = countingTransport{next: vc.HttpClient.Transport, count: &c.requests}
	client, err := api.NewClient(vc)
	if err != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("vault: cannot configure a client for %s: %w", vc.Address, err))
	}
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	c.api = client
	if c.auth == nil {
		c.auth = TokenAuth{}
	}
	if _, static := c.auth.(TokenAuth); static {
		c.tokens = nil // a token the user gives is not kept: it is there at the next start
	}
	secret, err := c.resume(ctx)
	if err != nil {
		return nil, err
	}
	if secret == nil {
		if secret, err = c.login(ctx); err != nil {
			return nil, err
		}
	}
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.stop = cancel
	c.done = make(chan struct{})
	go func() {
		defer close(c.done)
		stop := context.AfterFunc(ctx, cancel)
		defer stop()
		c.keepToken(kctx, secret)
	}()
	return c, nil
}

func checkAddress(addr string) error {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix") || (u.Host == "" && u.Scheme != "unix") {
		return fail.Mark(fail.Usage, fmt.Errorf("vault: address %q is not a URL like https://vault.example.com:8200", addr))
	}
	return nil
}

// CheckTransport refuses to send the broker's token where it could be read
// or redirected on the way: plain http to an address that is not loopback
// (unless insecure says the network is protected otherwise: then a
// warning, at every start), and VAULT_SKIP_VERIFY (skipVerify) for one
// that is not loopback.
func CheckTransport(addr string, insecure bool, skipVerify string, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme == "unix" || loopback.Host(u.Hostname()) {
		return nil
	}
	if skip, _ := strconv.ParseBool(skipVerify); skip {
		return fail.Mark(fail.Usage, fmt.Errorf("vault: VAULT_SKIP_VERIFY turns off the check of Vault's certificate at %s, so anyone on the path could pose as Vault and take the broker's token: refused. Give Vault's CA instead (vault.ca_cert or VAULT_CACERT)", u.Redacted()))
	}
	if u.Scheme != "http" {
		return nil
	}
	if !insecure {
		return fail.Mark(fail.Usage, fmt.Errorf("vault: address %s is plain HTTP: the broker's Vault token and every secret it reads would cross the network in clear. Use https://, or set vault.insecure_http: true where the network is protected otherwise (a service mesh's mTLS, a socket proxy)", u.Redacted()))
	}
	log.Warn("vault.insecure_http: talking to Vault over plain HTTP; the broker's token and every secret cross the network in clear", "address", u.Redacted())
	return nil
}

// Close stops keeping the token alive.
func (c *Client) Close() {
	if c.stop != nil {
		c.stop()
		<-c.done
	}
}

// API returns the underlying Vault API client (for Transit keys and tests).
func (c *Client) API() *api.Client { return c.api }

// Requests returns how many HTTP requests the client has sent.
func (c *Client) Requests() int64 { return c.requests.Load() }

// Error is a failed Vault request.
type Error struct {
	Ref     string // the secret reference as configured, if any
	Op      string // read, write, login, renew
	Path    string // the Vault API path
	Status  int    // HTTP status; 0 when Vault was not reached
	Message string // what Vault said
	Kind    fail.Kind
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("vault ")
	b.WriteString(e.Op)
	b.WriteString(" ")
	b.WriteString(e.Path)
	if e.Ref != "" {
		fmt.Fprintf(&b, " (secret %s)", e.Ref)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": %d", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// FailKind classifies the error for exit codes and retries.
func (e *Error) FailKind() fail.Kind { return e.Kind }

// Retryable reports whether trying again later may succeed.
func (e *Error) Retryable() bool { return e.Kind.Retryable() }

// classify turns an API error into an *Error.
func classify(op, path, ref string, err error) *Error {
	e := &Error{Op: op, Path: path, Ref: ref, Err: err}
	var re *api.ResponseError
	if errors.As(err, &re) {
		e.Status = re.StatusCode
		e.Message = vaultMessage(re.Errors)
		switch {
		case re.StatusCode == http.StatusForbidden && strings.Contains(e.Message, "invalid token"):
			e.Kind = fail.Denied
			e.Message = "Vault does not accept the token: it expired, was revoked, or was never a token of this Vault (" + e.Message + "). Check the token the broker logs in with: vault.auth.token_file or VAULT_TOKEN, or the vault.auth method that gets it"
		case re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized:
			e.Kind = fail.Denied
		case re.StatusCode == http.StatusNotFound:
			e.Kind = fail.NotFound
		case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
			e.Kind = fail.Unavailable
			if strings.Contains(e.Message, "sealed") {
				e.Message += " (Vault is sealed; retrying until it is unsealed)"
			}
		default:
			e.Kind = fail.Usage
		}
		return e
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		e.Kind = fail.Unavailable
		e.Message = err.Error()
		return e
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		// Retrying cannot help: the address is wrong, not the network.
		e.Kind = fail.Usage
		e.Message = "the server at vault.address answers plain HTTP, not HTTPS: check the address's port (is it Vault's TLS listener?) and scheme; http:// is for a Vault on loopback only"
		return e
	}
	e.Kind = fail.Unavailable
	e.Message = "cannot reach Vault: " + err.Error()
	return e
}

// MaxMessageLen bounds the text of Vault's errors kept in a message.
const MaxMessageLen = 512

// vaultMessage is Vault's error text made one readable line: its
// "2 errors occurred:\n\t* a\n\t* b" lists become "a; b", control
// characters go (the text is Vault's, not ours: it must not forge log
// lines), and it is bounded.
func vaultMessage(errs []string) string {
	var parts []string
	for _, e := range errs {
		for _, line := range strings.Split(e, "\n") {
			line = strings.TrimSpace(line)
			line = strings.TrimSpace(strings.TrimPrefix(line, "* "))
			if line == "" || (strings.HasSuffix(line, "errors occurred:") || strings.HasSuffix(line, "error occurred:")) {
				continue
			}
			parts = append(parts, line)
		}
	}
	msg := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.Join(parts, "; "))
	if len(msg) > MaxMessageLen {
		msg = strings.ToValidUTF8(msg[:MaxMessageLen], "") + "..."
	}
	return msg
}

// checkTLSFiles checks every file the Vault library will read for TLS
// (ca_cert, client_cert, client_key and each file in ca_path, all read
// with no bound, and blocking on a FIFO) the way readlimit reads any input.
func checkTLSFiles(cfg Config) error {
	files := map[string]string{} // path -> setting
	for setting, path := range map[string]string{"vault.ca_cert": cfg.CACert, "vault.client_cert": cfg.ClientCert, "vault.client_key": cfg.ClientKey} {
		if path != "" {
			files[path] = setting
		}
	}
	if cfg.CAPath != "" {
		entries, err := os.ReadDir(cfg.CAPath)
		if err != nil {
			return fail.Mark(fail.Usage, fmt.Errorf("vault: TLS settings: vault.ca_path: %w", err))
		}
		for _, e := range entries {
			if !e.IsDir() {
				files[filepath.Join(cfg.CAPath, e.Name())] = "vault.ca_path file"
			}
		}
	}
	for path, setting := range files {
		data, err := readlimit.File(path, MaxTLSFileLen, setting+" "+path)
		if err != nil {
			return fail.Mark(fail.Usage, fmt.Errorf("vault: TLS settings: %w", err))
		}
		clear(data)
	}
	return nil
}
