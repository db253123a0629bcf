package broker

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"github.com/secrets-broker/secrets-broker/providers/idp"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// tokenClient is a token entry's client and the credentials it was made
// with: new credentials (a rotated client secret) make a new client.
type tokenClient struct {
	sum    [32]byte
	client *idp.Client
}

// tokenDecls adds the declarations the tokens: section implies: one per
// credential reference (fetched like any secret) and one per entry (the
// whole token, for templates).
func tokenDecls(cfg *config.Config, decls map[string]config.SecretDecl) {
	for _, c := range cfg.TokenCredentials() {
		decls[c.Decl.Name] = c.Decl
	}
	for _, name := range cfg.TokenNames() {
		n := config.TokenName(name)
		ref, err := config.ParseSecretRef("token:" + name)
		if err == nil {
			decls[n] = config.SecretDecl{Name: n, Ref: ref}
		}
	}
}

// WithCredentials returns names and, for every token they use, the
// declared credentials the token is requested with, so that one fetch
// pass (and a daemon's watchers) holds both.
func (b *Broker) WithCredentials(names []string) []string {
	out := slices.Clone(names)
	// A subject token (token:OTHER) is itself a credential of a token:
	// go on until nothing is added.
	for added := true; added; {
		added = false
		for _, tok := range b.tokensOf(out) {
			for _, c := range b.credentials[tok] {
				if !slices.Contains(out, c) {
					out = append(out, c)
					added = true
				}
			}
		}
	}
	return out
}

// tokensOf lists the token entries names use, each once, an exchanged
// entry after the entry whose token it exchanges.
func (b *Broker) tokensOf(names []string) []string {
	var out []string
	for _, n := range names {
		if d, ok := b.decls[n]; ok && d.Ref.Scheme == "token" && !slices.Contains(out, d.Ref.Token) {
			out = append(out, d.Ref.Token)
		}
	}
	slices.Sort(out)
	return b.cfg.TokenOrder(out)
}

// TokenDecls names the declared secrets (and the template stand-in) that
// pick a field of entry name's token.
func (b *Broker) TokenDecls(name string) []string {
	var out []string
	for n, d := range b.decls {
		if d.Ref.Scheme == "token" && d.Ref.Token == name {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// TokensOf lists the token entries names use, sorted.
func (b *Broker) TokensOf(names []string) []string { return b.tokensOf(names) }

// FetchToken asks entry name's IdP for a new token with the credentials
// in values (as the fetch pass read them).
func (b *Broker) FetchToken(ctx context.Context, name string, values map[string]string) (*idp.Token, error) {
	if t := b.cfg.Tokens[name]; t != nil && t.VaultIdentity != "" {
		tok, err := b.vaultIdentityToken(ctx, name, t.VaultIdentity)
		if err == nil && b.cfg.Cache != nil {
			b.rememberToken(ctx, name, values, tok)
		}
		return tok, err
	}
	c, subject, err := b.tokenClient(name, values)
	if err != nil {
		return nil, err
	}
	tok, err := c.FetchFor(ctx, subject)
	if err == nil && b.cfg.Cache != nil {
		b.rememberToken(ctx, name, values, tok)
	}
	return tok, err
}

// tokenClient returns entry name's client, made anew when its credentials
// changed, and the subject token of an exchange (passed per request: it
// changes with every refresh of its source).
func (b *Broker) tokenClient(name string, values map[string]string) (*idp.Client, string, error) {
	t := b.cfg.Tokens[name]
	if t == nil {
		return nil, "", fail.Mark(fail.Usage, fmt.Errorf("token %q is not an entry of tokens: in the config", name))
	}
	cred := func(field string) (string, error) {
		v, ok := values[config.CredentialName(name, field)]
		if !ok {
			return "", fmt.Errorf("tokens.%s: its %s was not fetched", name, field)
		}
		return v, nil
	}
	src := idp.Source{Name: name, Issuer: t.Issuer, TokenURL: t.TokenURL, AuthMethod: t.AuthMethod(), ClientID: t.ClientID, KeyID: t.KeyID,
		Scopes: t.Scopes, Audience: t.Audience, Resource: t.Resource, Params: t.Params, Timeout: t.Timeout}
	var errs []error
	get := func(field string, into *string) {
		if v, err := cred(field); err != nil {
			errs = append(errs, err)
		} else {
			*into = v
		}
	}
	if t.ClientIDIsRef() {
		get("client_id", &src.ClientID)
	}
	var key, cert, keyPEM string
	if e := t.Exchange; e != nil {
		get("subject_token", &src.SubjectToken)
		src.SubjectTokenType, src.RequestedTokenType = e.SubjectType(), e.RequestedTokenType
	}
	switch src.AuthMethod {
	case idp.ClientSecretBasic, idp.ClientSecretPost:
		get("client_secret", &src.ClientSecret)
	case idp.PrivateKeyJWT:
		get("private_key", &key)
	case idp.TLSClientAuth:
		get("client_cert", &cert)
		get("client_key", &keyPEM)
	}
	if len(errs) > 0 {
		return nil, "", errors.Join(errs...)
	}
	subject := src.SubjectToken
	src.SubjectToken = ""
	h := sha256.New()
	for _, s := range []string{src.ClientID, src.ClientSecret, key, cert, keyPEM} {
		fmt.Fprintf(h, "%d:%s", len(s), s)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	b.tokenMu.Lock()
	defer b.tokenMu.Unlock()
	if tc, ok := b.tokenClients[name]; ok && tc.sum == sum {
		return tc.client, subject, nil
	}
	src.PrivateKeyPEM = []byte(key)
	if src.AuthMethod == idp.TLSClientAuth {
		pair, err := tls.X509KeyPair([]byte(cert), []byte(keyPEM))
		if err != nil {
			return nil, "", fail.Mark(fail.Usage, fmt.Errorf("tokens.%s: client_cert and client_key are not a PEM certificate and its key", name))
		}
		src.ClientCert = &pair
	}
	if t.CACert != "" {
		pemData, err := readlimit.File(b.cfg.Resolve(t.CACert), 1<<20, "tokens."+name+".ca_cert")
		if err != nil {
			return nil, "", err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, "", fail.Mark(fail.Usage, fmt.Errorf("tokens.%s.ca_cert: %s holds no PEM certificate", name, t.CACert))
		}
		src.RootCAs = pool
	}
	c, err := idp.New(src)
	if err != nil {
		return nil, "", err
	}
	if old, ok := b.tokenClients[name]; ok {
		old.client.Close()
	}
	b.tokenClients[name] = tokenClient{sum: sum, client: c}
	return c, subject, nil
}

// ApplyToken records entry name's new token in res: the token itself and
// every declared secret that picks a field of it.
func (b *Broker) ApplyToken(res *Resolved, name string, tok *idp.Token) {
	res.Tokens[name] = tok
	for n, d := range b.decls {
		if d.Ref.Scheme == "token" && d.Ref.Token == name {
			res.Values[n] = tokenField(tok, d.Ref.TokenField)
		}
	}
}

func tokenField(t *idp.Token, field string) string {
	switch field {
	case "token_type":
		return t.TokenType
	case "expiry":
		return t.Expiry.UTC().Format(time.RFC3339)
	case "scope":
		return t.Scope
	}
	return t.AccessToken
}

// fetchTokens gets a token for every entry names use, after the
// credentials were fetched into res.
func (b *Broker) fetchTokens(ctx context.Context, names []string, res *Resolved) []error {
	var errs []error
	for _, name := range b.tokensOf(names) {
		if tok := b.cachedToken(ctx, name, res.Values); tok != nil {
			b.ApplyToken(res, name, tok)
			continue
		}
		tok, err := b.FetchToken(ctx, name, res.Values)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.ApplyToken(res, name, tok)
	}
	return errs
}

// closeTokens releases the token clients.
func (b *Broker) closeTokens() {
	b.tokenMu.Lock()
	defer b.tokenMu.Unlock()
	for _, tc := range b.tokenClients {
		tc.client.Close()
	}
	clear(b.tokenClients)
}

// vaultIdentityToken reads a Vault identity token (an OIDC ID token Vault
// signs for the broker's entity) from identity/oidc/token/ROLE; its ttl is
// the token's lifetime.
func (b *Broker) vaultIdentityToken(ctx context.Context, name, role string) (*idp.Token, error) {
	vc, err := b.VaultClient(ctx)
	if err != nil {
		return nil, err
	}
	ref, err := vault.ParseRef("identity/oidc/token/" + role)
	if err != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("tokens.%s.vault_identity: %w", name, err))
	}
	sent := time.Now()
	s, err := vc.Read(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("tokens.%s: %w", name, err)
	}
	token, _ := s.Data["token"].(string)
	if token == "" || len(token) > idp.MaxTokenLen {
		return nil, fail.Mark(fail.Format, fmt.Errorf("tokens.%s: Vault's answer at identity/oidc/token/%s holds no usable token", name, role))
	}
	ttl, _ := vault.Seconds(s.Data["ttl"]) // none: the lifetime rule's guess
	lifetime, guessed, err := idp.Lifetime(ttl)
	if err != nil {
		return nil, fmt.Errorf("tokens.%s: %w", name, err)
	}
	return &idp.Token{AccessToken: token, TokenType: "Bearer", IssuedAt: sent, Expiry: sent.Add(lifetime), LifetimeGuessed: guessed}, nil
}
