package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/errgroup"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/vaultcache"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// restartCache opens the configured restart cache (nil when there is none)
// with the one key the config names for it.
func (b *Broker) restartCache(ctx context.Context) (*vaultcache.Store, error) {
	if b.cfg.Cache == nil {
		return nil, nil
	}
	if b.restart != nil {
		return b.restart, nil
	}
	keys, err := b.keyConfig([]string{b.cfg.Cache.Key}).ForSealing(ctx)
	if err != nil {
		return nil, fmt.Errorf("cache.key: %w", err)
	}
	auth := b.vaultAuth()
	principal, err := auth.Principal()
	if err != nil {
		// The login will say what is wrong with its credentials; without
		// knowing whom they name, nothing kept can be matched to them.
		b.stopRemembering(fmt.Sprintf("cannot tell whom the Vault login (%s) names (%v), so the restart cache is not used", auth.Describe(), err))
		return nil, nil
	}
	store, err := vaultcache.Open(b.cfg.Resolve(b.cfg.Cache.Path), keys, b.vaultIdentity()+" login:"+b.authIdentity(), principal)
	if err != nil {
		return nil, err
	}
	b.restart = store
	return store, nil
}

// vaultIdentity names the Vault the config reaches (address and namespace),
// which every cache entry is bound to (with the login, authIdentity).
func (b *Broker) vaultIdentity() string {
	addr, ns := os.Getenv("VAULT_ADDR"), os.Getenv("VAULT_NAMESPACE")
	if v := b.cfg.Vault; v != nil {
		if v.Address != "" {
			addr = v.Address
		}
		if v.Namespace != "" {
			ns = v.Namespace
		}
	}
	if addr == "" {
		addr = api.DefaultAddress
	}
	return strings.TrimRight(addr, "/") + " " + ns
}

// cachedTokens keeps the broker's Vault token in the restart cache, bound
// to the auth settings that got it: a changed role or method logs in anew.
type cachedTokens struct {
	b   *Broker
	key vaultcache.Request
}

// tokenStore is the restart cache's keeper of the broker's token, or nil
// when there is no cache or its key is a Transit key (which needs the
// token to open anything). The vault client keeps only tokens it logged in
// for, never one the user gives (vault.Config.Tokens).
func (b *Broker) tokenStore() vault.TokenStore {
	if c := b.cfg.Cache; c == nil || strings.HasPrefix(c.Key, "transit:") {
		return nil
	}
	return cachedTokens{b: b, key: vaultcache.Request{Key: "token:" + b.authIdentity()}}
}

// authIdentity names the configured login (method, mount, role, the files
// it reads): cache entries are bound to it, so a config that logs in as
// someone else never reuses what another login fetched, even with Vault
// unreachable.
func (b *Broker) authIdentity() string {
	var auth config.Auth
	if b.cfg.Vault != nil && b.cfg.Vault.Auth != nil {
		auth = *b.cfg.Vault.Auth
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%+v", auth))
	return hex.EncodeToString(sum[:16])
}

func (t cachedTokens) LoadToken(ctx context.Context) (string, error) {
	store, err := t.b.restartCache(ctx)
	if err != nil || store == nil {
		return "", err
	}
	e, ok, err := store.Get(ctx, t.key)
	if err != nil {
		_ = store.Delete(t.key)
		return "", err
	}
	if !ok || e.Response.Auth == nil || (!e.Expires.IsZero() && !time.Now().Before(e.Expires)) {
		return "", nil
	}
	return e.Response.Auth.ClientToken, nil
}

// SaveToken keeps the token of a login made as principal. The cache was
// opened for the principal the credentials named at the start; a login
// made as someone else (the files changed while the broker runs) is not
// kept, and from then on nothing is: everything the broker fetches now is
// fetched as someone the cache's entries do not name.
func (t cachedTokens) SaveToken(ctx context.Context, login *api.Secret, principal string) error {
	store, err := t.b.restartCache(ctx)
	if err != nil || store == nil {
		return err
	}
	if principal != store.Principal() {
		t.b.stopRemembering("the Vault credentials now name someone other than when the broker started")
		return nil
	}
	now := time.Now()
	e := vaultcache.Entry{Response: &api.Secret{Auth: login.Auth}, Fetched: now}
	if login.Auth.LeaseDuration > 0 {
		e.Expires = now.Add(time.Duration(login.Auth.LeaseDuration) * time.Second)
	}
	return store.Put(ctx, t.key, e)
}

// reuse returns the response to ref kept in the restart cache when it may
// stand in for a new request: a lease Vault says it still holds (its TTL as
// Vault now reports it), or a certificate before its renewal point. KV
// values are always read again (it mints nothing). An entry that is
// refused, expired or no longer held by Vault is deleted.
//
// A lookup that fails in a way worth retrying (Vault unreachable) keeps the
// entry and returns the error, so that the caller retries instead of
// minting a new lease.
func (b *Broker) reuse(ctx context.Context, vc *vault.Client, store *vaultcache.Store, ref vault.Ref) (*vault.Secret, error) {
	key, shown := cacheRequest(ref), b.ShownRequest(ref)
	e, ok, err := store.Get(ctx, key)
	drop := func(why string, args ...any) (*vault.Secret, error) {
		b.log.Info("restart cache: "+why, append([]any{"request", shown}, args...)...)
		_ = store.Delete(key)
		return nil, nil
	}
	if err != nil {
		b.log.Warn("restart cache: an entry is refused; fetching it afresh", "request", shown, "error", err)
		_ = store.Delete(key)
		return nil, nil
	}
	if !ok {
		return nil, nil
	}
	s, err := vault.FromResponse(ref, e.Response, e.Fetched)
	if err != nil {
		return drop("the kept response is unusable; fetching afresh", "error", err)
	}
	now := time.Now()
	renewAt, isCert := s.RenewCertAt(b.certRenewal())
	if s.Lease.ID == "" && (!isCert || !now.Before(renewAt)) {
		return nil, nil // a value without a lease is read again; a certificate past its renewal point is issued again
	}
	if s.Lease.ID != "" && !e.Expires.IsZero() && !now.Before(e.Expires) {
		return drop("the kept lease has expired; fetching a new one")
	}
	// The identity fetching now (its policies may have changed since) must
	// be allowed to make the request the entry answers.
	allowed, err := vc.MayRequest(ctx, ref)
	if err != nil && fail.KindOf(err).Retryable() {
		return nil, fmt.Errorf("restart cache: cannot ask Vault what this login may read for %s: %w", shown, err)
	}
	if err != nil || !allowed {
		return drop("the current Vault login may not make this request; not reusing what an earlier one fetched", "error", err)
	}
	if s.Lease.ID == "" {
		b.log.Info("restart cache: reusing a certificate before its renewal point", "request", shown, "renew_at", renewAt.UTC().Format(time.RFC3339))
		return s, nil
	}
	st, err := vc.LookupLease(ctx, s.Lease.ID)
	if err != nil && fail.KindOf(err).Retryable() {
		return nil, fmt.Errorf("restart cache: cannot ask Vault about the kept lease for %s: %w", shown, err)
	}
	if err != nil {
		return drop("Vault does not confirm the kept lease; fetching a new one", "error", err)
	}
	if st.TTL < minReuseTTL {
		return drop("Vault does not confirm the kept lease (it ends in under 10 s); fetching a new one", "ttl", st.TTL.String())
	}
	raw := *e.Response
	raw.LeaseDuration, raw.Renewable = int(st.TTL.Seconds()), st.Renewable
	s.Raw = &raw
	s.Lease = vault.Lease{ID: raw.LeaseID, TTL: st.TTL, Renewable: st.Renewable, IssuedAt: now}
	b.log.Info("restart cache: reusing a lease Vault confirms", "request", shown, "ttl", st.TTL.String())
	return s, nil
}

// cacheRequest is the restart-cache entry of ref's request.
func cacheRequest(ref vault.Ref) vaultcache.Request {
	return vaultcache.Request{Key: ref.RequestKey(), Computed: ref.Computed}
}

// minReuseTTL is the least time a kept lease must have left to be reused:
// a revoked lease can still be looked up for a moment with no time left.
const minReuseTTL = 10 * time.Second

// certRenewal is the configured point of a certificate's validity at which
// a fresh one is issued (zero: the default).
func (b *Broker) certRenewal() float64 {
	if b.cfg.Refresh != nil {
		return b.cfg.Refresh.CertificateRenewal
	}
	return 0
}

// Remember keeps responses in the restart cache, a few at a time. A failure
// is logged: the cache saves work, it is never needed to render.
func (b *Broker) Remember(ctx context.Context, secrets map[string]*vault.Secret) {
	if b.notRemembering.Load() {
		return
	}
	store, err := b.restartCache(ctx)
	if err != nil || store == nil {
		if err != nil {
			b.log.Warn("restart cache unavailable; a restart will fetch afresh", "error", err)
		}
		return
	}
	// What the client's token fetched is kept only under the principal it
	// was got as: the client may be shared by a newer generation of the
	// daemon, whose cache was opened for whom the files named then.
	if b.vault == nil || b.vault.Principal() != store.Principal() {
		b.stopRemembering("the Vault login now names someone other than the restart cache was opened for")
		return
	}
	var g errgroup.Group
	g.SetLimit(localConcurrency)
	for key, s := range secrets {
		if s == nil || s.Raw == nil || !b.worthKeeping(key, s) {
			continue
		}
		g.Go(func() error {
			e := vaultcache.Entry{Response: s.Raw, Fetched: s.Lease.IssuedAt, Expires: s.Lease.ExpiresAt()}
			if s.Lease.ID != "" {
				raw := *s.Raw
				raw.LeaseDuration, raw.Renewable = int(s.Lease.TTL.Seconds()), s.Lease.Renewable
				e.Response = &raw
			}
			if err := store.Put(ctx, vaultcache.Request{Key: key, Computed: s.Ref.Computed}, e); err != nil {
				b.log.Warn("restart cache: cannot keep a response; a restart will fetch it afresh", "request", b.ShownRequest(s.Ref), "error", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// stopRemembering turns the restart cache's writes off for the rest of
// this broker's life, with a warning the first time.
func (b *Broker) stopRemembering(why string) {
	if !b.notRemembering.Swap(true) {
		b.log.Warn("restart cache: "+why+"; nothing more is kept until the broker restarts", "cache", b.cfg.Cache.Path)
	}
}

// keptEntry is what the restart cache last got for a request.
type keptEntry struct {
	at  time.Time
	sum [32]byte
}

// worthKeeping says whether s should be written to the restart cache: a
// lease always (new, or renewed: its end moved); a certificate when it is a
// new one; a value without a lease (KV) only when max_stale lets a restart
// use it, and then when it changed or its last copy is a quarter of
// max_stale old. A sidecar re-reading KV every few minutes does not re-seal
// (one KMS call each) what has not changed.
func (b *Broker) worthKeeping(key string, s *vault.Secret) bool {
	if s.Lease.ID != "" {
		return true
	}
	_, isCert := s.RenewCertAt(b.certRenewal())
	if !isCert && b.cfg.Cache.MaxStale <= 0 {
		return false
	}
	data, err := json.Marshal(s.Raw.Data)
	if err != nil {
		return true
	}
	sum := sha256.Sum256(data)
	clear(data)
	now := time.Now()
	b.keptMu.Lock()
	defer b.keptMu.Unlock()
	if b.kept == nil {
		b.kept = map[string]keptEntry{}
	}
	last, ok := b.kept[key]
	if ok && last.sum == sum && (isCert || now.Sub(last.at) < b.cfg.Cache.MaxStale/4) {
		return false
	}
	b.kept[key] = keptEntry{at: now, sum: sum}
	return true
}

// staleFromCache resolves every Vault request from the restart cache when
// Vault cannot be reached: only values without a lease (KV values, and
// certificates before their renewal point) fetched at most cache.max_stale
// ago. A lease
// is never rendered without Vault's word. ok is false unless everything
// needed (Vault and local secrets) resolved.
func (b *Broker) staleFromCache(ctx context.Context, names []string, idx *Requests) (*Resolved, bool) {
	c := b.cfg.Cache
	if c == nil || c.MaxStale <= 0 || strings.HasPrefix(c.Key, "transit:") {
		return nil, false
	}
	store, err := b.restartCache(ctx)
	if err != nil || store == nil {
		return nil, false
	}
	res := newResolved()
	now := time.Now()
	var oldest time.Duration
	for _, r := range idx.refs {
		key := r.RequestKey()
		e, ok, err := store.Get(ctx, cacheRequest(r))
		if err != nil || !ok {
			return nil, false
		}
		s, err := vault.FromResponse(r, e.Response, e.Fetched)
		if err != nil || s.Lease.ID != "" {
			return nil, false
		}
		if at, isCert := s.RenewCertAt(b.certRenewal()); isCert && !now.Before(at) {
			return nil, false
		}
		// max_stale holds for certificates (and their keys) as for KV.
		age := now.Sub(e.Fetched)
		if age > c.MaxStale || age < 0 {
			return nil, false
		}
		oldest = max(oldest, age)
		if err := b.Apply(res, idx, key, s); err != nil {
			return nil, false
		}
	}
	if errs := b.fetchLocals(ctx, names, res); len(errs) > 0 {
		return nil, false
	}
	b.log.Warn("Vault cannot be reached: rendering from the restart cache", "vault_requests", len(idx.refs), "oldest", oldest.Round(time.Second).String(), "max_stale", c.MaxStale.String())
	return res, true
}

// reuseAll asks the restart cache for each request (concurrently, a few at
// a time: each lease is a lookup), puts what may be reused in got, and
// returns the requests still to be made. A request whose kept lease Vault
// could not be asked about is neither reused nor made (that would mint a
// new lease): its error is returned, to be retried.
func (b *Broker) reuseAll(ctx context.Context, vc *vault.Client, store *vaultcache.Store, need []vault.Ref, got map[string]*vault.Secret) ([]vault.Ref, error) {
	reused := make([]*vault.Secret, len(need))
	errs := make([]error, len(need))
	var g errgroup.Group
	g.SetLimit(localConcurrency)
	for i, r := range need {
		g.Go(func() error {
			reused[i], errs[i] = b.reuse(ctx, vc, store, r) // need comes from a request index: no field
			return nil
		})
	}
	_ = g.Wait()
	var rest []vault.Ref
	for i, r := range need {
		switch {
		case errs[i] != nil:
		case reused[i] != nil:
			got[r.RequestKey()] = reused[i]
		default:
			rest = append(rest, r)
		}
	}
	return rest, errors.Join(errs...)
}
