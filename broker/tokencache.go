package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/vaultcache"
	"github.com/secrets-broker/secrets-broker/providers/idp"
)

// tokenRequest is the restart-cache key of entry name's token, bound to
// what the token was asked for: the issuer or token URL, the client id,
// the auth method, scopes, audience, resource and parameters, an
// exchange's subject token, a Vault identity token's role and Vault. A change to
// any of them asks the IdP afresh. The key is sealed inside the entry
// (Computed): a client id read from a secret reference is not for a KMS
// context.
func (b *Broker) tokenRequest(name string, values map[string]string) vaultcache.Request {
	t := b.cfg.Tokens[name]
	clientID := t.ClientID
	if t.ClientIDIsRef() {
		clientID = values[config.CredentialName(name, "client_id")]
	}
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %q %q %q %q %q", t.Issuer, t.TokenURL, clientID, t.AuthMethod(), strings.Join(t.Scopes, " "), t.Audience, t.Resource)
	if e := t.Exchange; e != nil {
		// Bound to the subject token itself, not its reference: another
		// subject (the subject entry's client changed, a file now holding
		// another service account's token) asks afresh.
		subject := sha256.Sum256([]byte(values[config.CredentialName(name, "subject_token")]))
		fmt.Fprintf(h, " exchange %q %q %x", e.SubjectType(), e.RequestedTokenType, subject)
	}
	if t.VaultIdentity != "" {
		fmt.Fprintf(h, " vault_identity %q %q", t.VaultIdentity, b.vaultIdentity())
	}
	keys := make([]string, 0, len(t.Params))
	for k := range t.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, " %q=%q", k, t.Params[k])
	}
	return vaultcache.Request{Key: "idp-token:" + name + ":" + hex.EncodeToString(h.Sum(nil)), Computed: true}
}

// cachedToken returns entry name's token from the restart cache while it
// is younger than 2/3 of its lifetime (the earliest point the daemon
// would replace it), so that a restarting pod does not ask the IdP again;
// nil otherwise.
func (b *Broker) cachedToken(ctx context.Context, name string, values map[string]string) *idp.Token {
	store, err := b.restartCache(ctx)
	if err != nil || store == nil {
		return nil
	}
	e, ok, err := store.Get(ctx, b.tokenRequest(name, values))
	if err != nil {
		b.log.Warn("a restart-cache entry for an access token is refused; asking the IdP", "token", name, "error", err)
		return nil
	}
	if !ok || e.Response == nil {
		return nil
	}
	tok := tokenOfEntry(e)
	if tok == nil {
		return nil
	}
	now := time.Now()
	if tok.Expired(now) || !now.Before(tok.IssuedAt.Add(tok.Lifetime()*2/3)) || tok.IssuedAt.After(now) {
		return nil
	}
	return tok
}

// rememberToken seals entry name's new token into the restart cache.
func (b *Broker) rememberToken(ctx context.Context, name string, values map[string]string, tok *idp.Token) {
	if b.notRemembering.Load() {
		return
	}
	store, err := b.restartCache(ctx)
	if err != nil || store == nil {
		return
	}
	e := vaultcache.Entry{Fetched: tok.IssuedAt, Expires: tok.Expiry, Response: &api.Secret{Data: map[string]any{
		"access_token": tok.AccessToken, "token_type": tok.TokenType, "scope": tok.Scope,
		"issued_at": tok.IssuedAt.Format(time.RFC3339Nano), "expiry": tok.Expiry.Format(time.RFC3339Nano),
	}}}
	if err := store.Put(ctx, b.tokenRequest(name, values), e); err != nil {
		b.log.Warn("could not keep an access token in the restart cache", "token", name, "error", err)
	}
}

// tokenOfEntry reads a token back from a cache entry (sealed by the
// broker, so trusted once opened), or nil when it is not one.
func tokenOfEntry(e vaultcache.Entry) *idp.Token {
	str := func(k string) string { s, _ := e.Response.Data[k].(string); return s }
	issued, err1 := time.Parse(time.RFC3339Nano, str("issued_at"))
	expiry, err2 := time.Parse(time.RFC3339Nano, str("expiry"))
	if err1 != nil || err2 != nil || str("access_token") == "" || !expiry.After(issued) {
		return nil
	}
	return &idp.Token{AccessToken: str("access_token"), TokenType: str("token_type"), Scope: str("scope"), IssuedAt: issued, Expiry: expiry}
}
