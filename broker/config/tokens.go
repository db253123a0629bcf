package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/secrets-broker/secrets-broker/providers/idp"
)

// Token is one entry of tokens: an access token the broker gets from an
// OAuth 2.0 token endpoint with credentials it holds, and keeps fresh
// (docs/tokens.md). The credentials are secret references; the entry never
// holds a secret itself.
type Token struct {
	// Issuer is an OpenID issuer (its discovery document names the token
	// endpoint); TokenURL names the endpoint directly. Give one.
	Issuer   string `yaml:"issuer"`
	TokenURL string `yaml:"token_url"`
	// Auth is the client authentication method (idp.Methods); default
	// client_secret_basic.
	Auth string `yaml:"auth"`
	// ClientID is the client id, or a secret reference to it.
	ClientID string `yaml:"client_id"`
	// ClientSecret is a secret reference (client_secret_basic and _post).
	ClientSecret string `yaml:"client_secret"`
	// PrivateKey is a secret reference to a PEM private key
	// (private_key_jwt); KeyID names it in the assertion's header.
	PrivateKey string `yaml:"private_key"`
	KeyID      string `yaml:"key_id"`
	// ClientCert and ClientKey are secret references to the PEM
	// certificate and key of tls_client_auth.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// CACert is a PEM file of CAs trusted for the IdP instead of the
	// system's.
	CACert   string            `yaml:"ca_cert"`
	Scopes   []string          `yaml:"scopes"`
	Audience string            `yaml:"audience"`
	Resource string            `yaml:"resource"`
	Params   map[string]string `yaml:"params"`
	// Timeout bounds one token request (default 30 s).
	Timeout time.Duration `yaml:"timeout"`
	// Exchange, when set, makes the request a token exchange (RFC 8693).
	Exchange *Exchange `yaml:"exchange"`
	// VaultIdentity names a Vault identity token role: the token is read
	// from identity/oidc/token/ROLE with the broker's Vault login and
	// replaced by its ttl. It takes none of the settings above.
	VaultIdentity string `yaml:"vault_identity"`
}

// Exchange is a token exchange: the subject token traded for this entry's
// token (another audience, other scopes).
type Exchange struct {
	// SubjectToken is a reference: another entry's token (token:NAME) or a
	// file such as a projected service-account token (file:PATH).
	SubjectToken string `yaml:"subject_token"`
	// SubjectTokenType defaults to the access_token type for token: and to
	// the jwt type otherwise.
	SubjectTokenType   string `yaml:"subject_token_type"`
	RequestedTokenType string `yaml:"requested_token_type"`
}

// SubjectTokenType is the configured type or its default.
func (e *Exchange) SubjectType() string {
	if e.SubjectTokenType != "" {
		return e.SubjectTokenType
	}
	if strings.HasPrefix(e.SubjectToken, "token:") {
		return idp.TokenTypeAccessToken
	}
	return idp.TokenTypeJWT
}

// TokenFields are what a token: reference may pick (#FIELD); the first is
// the default.
var TokenFields = []string{"access_token", "token_type", "expiry", "scope"}

// credentialFields are the token settings that are secret references, by
// the name they take in messages.
func (t *Token) credentialFields() map[string]*string {
	f := map[string]*string{"client_secret": &t.ClientSecret, "private_key": &t.PrivateKey, "client_cert": &t.ClientCert, "client_key": &t.ClientKey}
	if t.Exchange != nil {
		f["subject_token"] = &t.Exchange.SubjectToken
	}
	return f
}

// ClientIDIsRef says whether client_id is a secret reference rather than
// the id itself.
func (t *Token) ClientIDIsRef() bool {
	for _, s := range []string{"vault:", "envelope:", "file:"} {
		if strings.HasPrefix(t.ClientID, s) {
			return true
		}
	}
	return false
}

// AuthMethod is Auth or its default.
func (t *Token) AuthMethod() string {
	if t.Auth == "" {
		return idp.ClientSecretBasic
	}
	return t.Auth
}

// TokenCredential is one credential of a token entry, declared as a
// secret the fetch pass reads like any other.
type TokenCredential struct {
	Token, Field string
	Decl         SecretDecl
}

// CredentialName is the name the fetch pass gives a token's credential:
// it holds a '/', which no declared secret's name may, so the two never
// meet.
func CredentialName(token, field string) string { return "tokens/" + token + "/" + field }

// TokenName is the name of the declared secret a template's `token` call
// stands for: the whole token of entry name.
func TokenName(token string) string { return "tokens/" + token }

// TokenCredentials lists every credential reference of every token entry,
// in name order, as declarations.
func (c *Config) TokenCredentials() []TokenCredential {
	var out []TokenCredential
	for _, name := range c.TokenNames() {
		t := c.Tokens[name]
		fields := t.credentialFields()
		if t.ClientIDIsRef() {
			fields["client_id"] = &t.ClientID
		}
		keys := make([]string, 0, len(fields))
		for f, v := range fields {
			if *v != "" {
				keys = append(keys, f)
			}
		}
		sort.Strings(keys)
		for _, f := range keys {
			ref, err := ParseSecretRef(*fields[f])
			if err != nil {
				continue // Check reports it
			}
			out = append(out, TokenCredential{Token: name, Field: f, Decl: SecretDecl{Name: CredentialName(name, f), Ref: ref}})
		}
	}
	return out
}

// TokenNames are the token entries' names, sorted.
func (c *Config) TokenNames() []string {
	names := make([]string, 0, len(c.Tokens))
	for n := range c.Tokens {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkTokens checks the tokens section and the token: references.
func (c *Config) checkTokens(add func(string, ...any)) {
	for _, name := range c.TokenNames() {
		t := c.Tokens[name]
		where := "tokens." + name
		if err := validSecretName(name); err != nil {
			add("%s: %v", where, err)
		}
		if t == nil {
			add("%s: empty entry; give issuer or token_url, client_id and the client's credentials", where)
			continue
		}
		if t.VaultIdentity != "" {
			if strings.ContainsAny(t.VaultIdentity, "/?#") || validSecretName(t.VaultIdentity) != nil {
				add("%s.vault_identity: %q is not a role name (the ROLE of identity/oidc/token/ROLE)", where, t.VaultIdentity)
			}
			other := *t
			other.VaultIdentity, other.Timeout = "", 0
			if fmt.Sprint(other) != fmt.Sprint(Token{}) {
				add("%s: vault_identity takes no other setting (the token comes from Vault with the broker's login)", where)
			}
			continue
		}
		switch {
		case (t.Issuer == "") == (t.TokenURL == ""):
			add("%s: give issuer (OpenID discovery) or token_url, one of them", where)
		case t.Issuer != "":
			if err := idp.CheckURL(t.Issuer, where+".issuer"); err != nil {
				add("%v", err)
			}
		default:
			if err := idp.CheckURL(t.TokenURL, where+".token_url"); err != nil {
				add("%v", err)
			}
		}
		if t.ClientID == "" {
			add("%s: client_id is required", where)
		}
		need := map[string][]string{
			idp.ClientSecretBasic: {"client_secret"}, idp.ClientSecretPost: {"client_secret"},
			idp.PrivateKeyJWT: {"private_key"}, idp.TLSClientAuth: {"client_cert", "client_key"}, idp.None: nil,
		}
		fields := t.credentialFields()
		required, ok := need[t.AuthMethod()]
		if !ok {
			add("%s: auth %q is not one of %s", where, t.Auth, strings.Join(idp.Methods, ", "))
		}
		if t.Exchange != nil {
			required = append(slices.Clone(required), "subject_token")
		} else if t.AuthMethod() == idp.None {
			add("%s: auth none is only for a token exchange (exchange.subject_token)", where)
		}
		for _, f := range required {
			if *fields[f] == "" {
				add("%s: auth %s needs %s (a secret reference such as vault:secret/data/idp#%s)", where, t.AuthMethod(), f, f)
			}
		}
		for f, v := range fields {
			if *v != "" && ok && !slices.Contains(required, f) && f != "subject_token" {
				add("%s: %s is not used by auth %s; remove it or change auth", where, f, t.AuthMethod())
			}
			if *v == "" {
				continue
			}
			ref, err := ParseSecretRef(*v)
			if err != nil {
				// The text is not quoted: it may be the secret itself.
				add("%s.%s must be a secret reference (vault:PATH#FIELD, envelope:FILE#ENTRY or file:PATH), never the secret itself; what is there is not shown", where, f)
			} else if ref.Scheme == "token" && f != "subject_token" {
				add("%s.%s: a token's credentials cannot be another token", where, f)
			}
		}
		if t.ClientIDIsRef() {
			if ref, err := ParseSecretRef(t.ClientID); err != nil || ref.Scheme == "token" {
				add("%s.client_id: not a valid secret reference (vault:PATH#FIELD, envelope:FILE#ENTRY or file:PATH)", where)
			}
		}
		if t.Timeout < 0 {
			add("%s: timeout %s is negative", where, t.Timeout)
		}
		for _, k := range []string{"grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type", "scope", "audience", "resource"} {
			if _, ok := t.Params[k]; ok {
				add("%s.params: %s is set by the broker (use the setting of that name, or auth)", where, k)
			}
		}
	}
	c.checkExchangeCycles(add)
	for _, d := range c.Secrets {
		if d.Ref.Scheme != "token" {
			continue
		}
		if _, ok := c.Tokens[d.Ref.Token]; !ok {
			add("line %d: secret %q: %s names no entry of tokens:", d.line, d.Name, d.Ref)
		}
	}
}

// subjectOf names the entry whose token entry name exchanges, or "".
func (c *Config) subjectOf(name string) string {
	t := c.Tokens[name]
	if t == nil || t.Exchange == nil {
		return ""
	}
	ref, err := ParseSecretRef(t.Exchange.SubjectToken)
	if err != nil || ref.Scheme != "token" {
		return ""
	}
	return ref.Token
}

// checkExchangeCycles refuses a subject token that names no entry, and
// entries that exchange each other's tokens in a circle.
func (c *Config) checkExchangeCycles(add func(string, ...any)) {
	for _, name := range c.TokenNames() {
		seen := map[string]bool{name: true}
		for s := c.subjectOf(name); s != ""; s = c.subjectOf(s) {
			if _, ok := c.Tokens[s]; !ok {
				add("tokens.%s.exchange.subject_token: token:%s names no entry of tokens:", name, s)
				break
			}
			if seen[s] {
				add("tokens.%s.exchange.subject_token: the entries exchange each other's tokens in a circle", name)
				break
			}
			seen[s] = true
		}
	}
}

// TokenOrder lists names' token entries with every exchanged entry after
// the entry whose token it exchanges.
func (c *Config) TokenOrder(names []string) []string {
	var out []string
	var visit func(string, int)
	visit = func(n string, depth int) {
		if slices.Contains(out, n) || depth > len(c.Tokens) {
			return
		}
		if s := c.subjectOf(n); s != "" {
			visit(s, depth+1)
		}
		out = append(out, n)
	}
	for _, n := range names {
		visit(n, 0)
	}
	return out
}
