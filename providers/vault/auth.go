package vault

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"

	"github.com/secrets-broker/secrets-broker/internal/backoff"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// Auth logs in to Vault and returns the auth response (token and its lease).
type Auth interface {
	// Describe names the method and role for messages, e.g. `approle (role web)`.
	Describe() string
	Login(ctx context.Context, client *api.Client) (*api.Secret, error)
	// Principal names, without logging in, whom a login with the current
	// credentials would make the broker: the token itself for a token, the
	// role_id for AppRole, the token's issuer and subject for kubernetes
	// and jwt (the signature is Vault's to check). It is secret: the restart
	// cache seals it inside each entry it keeps, so that credentials that
	// now name someone else never get back what the old ones fetched.
	Principal() (string, error)
}

// MaxCredentialLen bounds a credential file (token, role_id, secret_id,
// JWT, service-account token): a few KiB in practice.
const MaxCredentialLen = 64 << 10

// readCredFile reads a credential file, bounded, refusing a FIFO or a
// device at once (a FIFO would block the broker past --timeout and
// SIGTERM; /dev/zero would never end).
func readCredFile(what, path string) (string, error) {
	data, err := readlimit.File(path, MaxCredentialLen, "the "+what+" file "+path)
	if err != nil {
		if k := fail.KindOf(err); k == fail.Internal || k == fail.NotFound {
			err = fail.Mark(fail.Usage, err) // a missing credential is the config's to fix
		}
		return "", fmt.Errorf("cannot read the %s file: %w", what, err)
	}
	v := strings.TrimSpace(string(data))
	clear(data)
	if v == "" {
		return "", fail.Mark(fail.Usage, fmt.Errorf("%s file %s is empty", what, path))
	}
	return v, nil
}

// principalOf is what Principal returns: a hash, so that the credential
// itself is not carried around longer than the login needs it.
func principalOf(method string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(method))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return method + ":" + hex.EncodeToString(h.Sum(nil))
}

// jwtPrincipal is a JWT's issuer and subject, read from its payload
// without checking the signature (Vault checks it at login); with neither
// claim, the token itself. A token that is not a JWT is an error.
func jwtPrincipal(method, what, path string) (string, error) {
	tok, err := readCredFile(what, path)
	if err != nil {
		return "", err
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", fail.Mark(fail.Usage, fmt.Errorf("%s file %s does not hold a JWT (three dot-separated parts)", what, path))
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", fail.Mark(fail.Usage, fmt.Errorf("%s file %s: the JWT's payload is not base64url", what, path))
	}
	var claims struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fail.Mark(fail.Usage, fmt.Errorf("%s file %s: the JWT's payload is not a JSON object", what, path))
	}
	if claims.Iss == "" && claims.Sub == "" {
		// Nothing stable names whom it is for: the token itself does, so
		// what is kept serves this token only.
		return principalOf(method, "token", tok), nil
	}
	return principalOf(method, claims.Iss, claims.Sub), nil
}

func loginErr(a Auth, path string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		e.Op = "login with " + a.Describe() + " at"
		return e
	}
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 {
		// Vault answers bad credentials with 400 on most methods.
		ce := classify("login with "+a.Describe()+" at", path, "", err)
		ce.Kind = fail.Denied
		return ce
	}
	if fail.KindOf(err) != fail.Internal {
		return fmt.Errorf("vault login with %s: %w", a.Describe(), err)
	}
	ce := classify("login with "+a.Describe()+" at", path, "", err)
	return ce
}

// TokenAuth uses a token from File, or else the VAULT_TOKEN environment
// variable. It is re-read at every login, so a token rotated by something
// else on disk is picked up.
type TokenAuth struct {
	File string
}

// Describe names the method.
func (t TokenAuth) Describe() string {
	if t.File != "" {
		return "token (file " + t.File + ")"
	}
	return "token (VAULT_TOKEN)"
}

// Principal is the token: another token is another login.
func (t TokenAuth) Principal() (string, error) {
	token := os.Getenv(api.EnvVaultToken)
	if t.File != "" {
		tok, err := readCredFile("token", t.File)
		if err != nil {
			return "", err
		}
		token = tok
	}
	return principalOf("token", token), nil
}

// Login checks the token with lookup-self and returns its lease.
func (t TokenAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	token := client.Token()
	if t.File != "" {
		tok, err := readCredFile("token", t.File)
		if err != nil {
			return nil, err
		}
		token = tok
	} else if env := os.Getenv(api.EnvVaultToken); env != "" {
		token = env
	}
	if token == "" {
		return nil, fail.Mark(fail.Usage, errors.New("vault: no token: set VAULT_TOKEN, a token file, or an auth method"))
	}
	c, err := client.Clone()
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	s, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, loginErr(t, "auth/token/lookup-self", err)
	}
	ttl, _ := s.TokenTTL()
	renewable, _ := s.TokenIsRenewable()
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: token, LeaseDuration: int(ttl.Seconds()), Renewable: renewable}}, nil
}

// AppRoleAuth logs in with a role_id and a secret_id read from files. With
// Wrapped, the secret_id file holds a response-wrapping token: it is
// unwrapped once and the secret_id kept in memory for later logins.
type AppRoleAuth struct {
	Mount              string // default "approle"
	RoleIDFile         string
	SecretIDFile       string
	Wrapped            bool
	RemoveSecretIDFile bool // remove the secret_id file after the first successful login

	mu       *sync.Mutex
	secretID *string
}

// NewAppRoleAuth returns an AppRole login.
func NewAppRoleAuth(a AppRoleAuth) *AppRoleAuth {
	a.mu = &sync.Mutex{}
	a.secretID = new(string)
	return &a
}

// Describe names the method.
func (a *AppRoleAuth) Describe() string { return "approle (mount " + a.mount() + ")" }

func (a *AppRoleAuth) mount() string {
	if a.Mount == "" {
		return "approle"
	}
	return a.Mount
}

// Principal is the role_id (the secret_id is single-use or rotated; the
// role is what names the policies).
func (a *AppRoleAuth) Principal() (string, error) {
	roleID, err := readCredFile("AppRole role_id", a.RoleIDFile)
	if err != nil {
		return "", err
	}
	return principalOf("approle", a.mount(), roleID), nil
}

// Login logs in.
func (a *AppRoleAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	roleID, err := readCredFile("AppRole role_id", a.RoleIDFile)
	if err != nil {
		return nil, err
	}
	path := "auth/" + a.mount() + "/login"
	if *a.secretID == "" {
		raw, err := readCredFile("AppRole secret_id", a.SecretIDFile)
		if err != nil {
			return nil, err
		}
		if a.Wrapped {
			c, err := client.Clone()
			if err != nil {
				return nil, err
			}
			c.SetToken("")
			s, err := c.Logical().UnwrapWithContext(ctx, raw)
			if err != nil {
				return nil, loginErr(a, "sys/wrapping/unwrap", err)
			}
			id, _ := s.Data["secret_id"].(string)
			if id == "" {
				return nil, fail.Mark(fail.Denied, fmt.Errorf("vault login with %s: the wrapped response in %s holds no secret_id", a.Describe(), a.SecretIDFile))
			}
			raw = id
		}
		*a.secretID = raw
	}
	ar, err := approle.NewAppRoleAuth(roleID, &approle.SecretID{FromString: *a.secretID}, approle.WithMountPath(a.mount()))
	if err != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("vault login with %s: %w", a.Describe(), err))
	}
	s, err := client.Auth().Login(ctx, ar)
	if err != nil {
		return nil, loginErr(a, path, err)
	}
	if a.RemoveSecretIDFile {
		if err := os.Remove(a.SecretIDFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("vault login with %s: cannot remove the secret_id file: %w", a.Describe(), err)
		}
	}
	return s, nil
}

// KubernetesAuth logs in with the pod's service-account token, as Vault
// Agent does. The token file is re-read at every login (projected tokens
// rotate).
type KubernetesAuth struct {
	Mount     string // default "kubernetes"
	Role      string
	TokenFile string // default /var/run/secrets/kubernetes.io/serviceaccount/token
}

// Describe names the method.
func (k KubernetesAuth) Describe() string { return "kubernetes (role " + k.Role + ")" }

// DefaultServiceAccountTokenFile is where Kubernetes mounts a pod's
// service-account token.
const DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

func (k KubernetesAuth) tokenFile() string {
	if k.TokenFile == "" {
		return DefaultServiceAccountTokenFile
	}
	return k.TokenFile
}

// Principal is the service-account token's issuer and subject (namespace
// and name), which stay the same as the projected token rotates.
func (k KubernetesAuth) Principal() (string, error) {
	p, err := jwtPrincipal("kubernetes", "service account token", k.tokenFile())
	if err != nil {
		return "", err
	}
	return principalOf(p, k.Role), nil
}

// Login logs in. The token is read here, bounded (not by the auth
// library, whose plain read blocks on a FIFO and has no size limit).
func (k KubernetesAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	mount := k.Mount
	if mount == "" {
		mount = "kubernetes"
	}
	token, err := readCredFile("service account token", k.tokenFile())
	if err != nil {
		return nil, fmt.Errorf("vault login with %s: %w", k.Describe(), err)
	}
	ka, err := kubernetes.NewKubernetesAuth(k.Role, kubernetes.WithMountPath(mount), kubernetes.WithServiceAccountToken(token))
	if err != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("vault login with %s: %w", k.Describe(), err))
	}
	s, err := client.Auth().Login(ctx, ka)
	if err != nil {
		return nil, loginErr(k, "auth/"+mount+"/login", err)
	}
	return s, nil
}

// JWTAuth logs in with a JWT (or OIDC ID token) read from a file at every
// login, to Vault's jwt auth method.
type JWTAuth struct {
	Mount   string // default "jwt"
	Role    string
	JWTFile string
}

// Describe names the method.
func (j JWTAuth) Describe() string { return "jwt (role " + j.Role + ")" }

// Principal is the JWT's issuer and subject.
func (j JWTAuth) Principal() (string, error) {
	p, err := jwtPrincipal("jwt", "JWT", j.JWTFile)
	if err != nil {
		return "", err
	}
	return principalOf(p, j.Role), nil
}

// Login logs in.
func (j JWTAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	mount := j.Mount
	if mount == "" {
		mount = "jwt"
	}
	jwt, err := readCredFile("JWT", j.JWTFile)
	if err != nil {
		return nil, err
	}
	return writeLogin(ctx, client, j, "auth/"+mount+"/login", map[string]any{"role": j.Role, "jwt": jwt})
}

// writeLogin writes body to a login path without a token and returns the
// auth response: the shape of every login but token, AppRole and
// Kubernetes (which use Vault's auth libraries).
func writeLogin(ctx context.Context, client *api.Client, a Auth, path string, body map[string]any) (*api.Secret, error) {
	c, err := client.Clone()
	if err != nil {
		return nil, err
	}
	c.SetToken("")
	s, err := c.Logical().WriteWithContext(ctx, path, body)
	if err != nil {
		return nil, loginErr(a, path, err)
	}
	if s == nil || s.Auth == nil {
		return nil, fail.Mark(fail.Denied, fmt.Errorf("vault login with %s at %s: no token in the response", a.Describe(), path))
	}
	return s, nil
}

func (c *Client) login(ctx context.Context) (*api.Secret, error) {
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	s, err := c.loginLocked(ctx)
	if c.onLogin != nil {
		c.onLogin(err)
	}
	if err != nil {
		return nil, err
	}
	msg := "vault: logged in"
	if c.logins.Add(1) > 1 {
		msg = "vault: logged in again"
	}
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	c.log.Info(msg, "method", c.auth.Describe(), "ttl", ttl.String(), "renewable", s.Auth.Renewable)
	return s, nil
}

func (c *Client) loginLocked(ctx context.Context) (*api.Secret, error) {
	// Whom the credentials name, read on both sides of the login: a token
	// is kept only under the principal it was got as (the files may change
	// while the broker runs, and every login reads them again).
	before, beforeErr := c.auth.Principal()
	s, err := c.auth.Login(ctx, c.api)
	if err != nil {
		return nil, err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fail.Mark(fail.Denied, fmt.Errorf("vault login with %s: no token in the response", c.auth.Describe()))
	}
	c.api.SetToken(s.Auth.ClientToken)
	after, afterErr := c.auth.Principal()
	known := beforeErr == nil && afterErr == nil && before == after
	if !known {
		after = ""
	}
	c.principal.Store(&after)
	if c.tokens != nil {
		if !known {
			c.log.Warn("vault: the login's credential files changed while it logged in; the new token is not kept in the restart cache", "method", c.auth.Describe())
		} else if err := c.tokens.SaveToken(ctx, s, after); err != nil {
			c.log.Warn("vault: cannot keep the new token in the restart cache; a restart will log in again", "error", err)
		}
	}
	return s, nil
}

// resume uses the token kept by a previous run when Vault still accepts it
// (auth/token/lookup-self) with more than a minute left, so that the leases
// it holds stay valid. It returns nil, nil when there is none to use, and
// an error only when Vault cannot be asked.
func (c *Client) resume(ctx context.Context) (*api.Secret, error) {
	if c.tokens == nil {
		return nil, nil
	}
	token, err := c.tokens.LoadToken(ctx)
	if err != nil {
		c.log.Warn("vault: the kept token is refused; logging in", "error", err)
		return nil, nil
	}
	if token == "" {
		return nil, nil
	}
	c.api.SetToken(token)
	self, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		c.api.ClearToken()
		if e := classify("lookup-self", "auth/token/lookup-self", "", err); e.Retryable() {
			return nil, e
		}
		c.log.Info("vault: the kept token is no longer valid; logging in", "method", c.auth.Describe())
		return nil, nil
	}
	ttl, err := self.TokenTTL()
	renewable, _ := self.TokenIsRenewable()
	if err != nil || (ttl > 0 && ttl < time.Minute) {
		c.api.ClearToken()
		return nil, nil
	}
	// The store gave the token only because it was kept under the
	// principal the credential files name now.
	if p, err := c.auth.Principal(); err == nil {
		c.principal.Store(&p)
	}
	c.log.Info("vault: reusing the token kept in the restart cache", "method", c.auth.Describe(), "ttl", ttl.String())
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: token, Renewable: renewable, LeaseDuration: int(ttl.Seconds())}}, nil
}

// loginBackoff spaces attempts to log in again: full jitter under a ceiling
// of 1 s doubling to 5 min.
func loginBackoff() backoff.Policy { return backoff.Policy{Base: time.Second, Max: 5 * time.Minute} }

// keepToken renews the broker's token with Vault's LifetimeWatcher while Vault
// extends it, and logs in again (loginBackoff between failures, each logged)
// when it cannot be renewed any longer.
func (c *Client) keepToken(ctx context.Context, secret *api.Secret) {
	for {
		if secret.Auth.LeaseDuration == 0 {
			return // a token that never expires (a root or periodic-less static token)
		}
		w, err := c.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
		if err != nil {
			return
		}
		go w.Start()
	watch:
		for {
			select {
			case <-ctx.Done():
				w.Stop()
				return
			case <-w.RenewCh():
			case <-w.DoneCh():
				break watch
			}
		}
		w.Stop()
		for attempt := 0; ; attempt++ {
			s, err := c.login(ctx)
			if err == nil {
				secret = s
				break
			}
			wait := loginBackoff().Delay(attempt)
			c.log.Warn("vault: logging in again failed; retrying", "method", c.auth.Describe(), "attempt", attempt+1, "retry_in", wait.Round(time.Millisecond).String(), "error", err)
			if !backoff.Sleep(ctx, wait) {
				return
			}
		}
	}
}

// relogin logs in again after a request was denied, for methods that can.
func (c *Client) relogin(ctx context.Context) bool {
	if t, ok := c.auth.(TokenAuth); ok && t.File == "" {
		return false
	}
	_, err := c.login(ctx)
	return err == nil
}
