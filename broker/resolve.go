package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/errgroup"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/backoff"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"github.com/secrets-broker/secrets-broker/providers/idp"
	"github.com/secrets-broker/secrets-broker/providers/vault"
	"github.com/secrets-broker/secrets-broker/templates"
)

// Resolved holds fetched secrets.
type Resolved struct {
	// Values maps declared names to values.
	Values map[string]string
	// Vault maps template Vault calls to responses.
	Vault map[string]*api.Secret
	// Requests maps each distinct Vault request (vault.Ref.RequestKey) to
	// its latest response, with its lease.
	Requests map[string]*vault.Secret
	// Tokens maps tokens: entries to their latest token.
	Tokens map[string]*idp.Token
}

func newResolved() *Resolved {
	return &Resolved{Values: map[string]string{}, Vault: map[string]*api.Secret{}, Requests: map[string]*vault.Secret{}, Tokens: map[string]*idp.Token{}}
}

// Clone copies the maps (not the secrets), for rendering while watchers
// update the original.
func (r *Resolved) Clone() *Resolved {
	c := newResolved()
	for k, v := range r.Values {
		c.Values[k] = v
	}
	for k, v := range r.Vault {
		c.Vault[k] = v
	}
	for k, v := range r.Requests {
		c.Requests[k] = v
	}
	for k, v := range r.Tokens {
		c.Tokens[k] = v
	}
	return c
}

// templateRef is the Vault request of a template call: PATH?version=N reads
// a KV v2 version; other parameters make a write.
// A computed call's path is never quoted (vault.Ref.Computed).
func templateRef(c templates.VaultCall) (vault.Ref, error) {
	if c.List {
		r, err := vault.ParseRef(c.Path)
		if err != nil || r.Field != "" || r.Version != 0 || len(r.Params) > 0 {
			shown := strconv.Quote(c.Path)
			if c.Computed {
				shown = "of a computed path"
			}
			return vault.Ref{Path: c.Path, List: true, Computed: c.Computed}, fmt.Errorf("template secrets %s: not a Vault path to list", shown)
		}
		r.List, r.Computed = true, c.Computed
		return r, nil
	}
	r, err := vault.ParseRef(c.Key())
	if err != nil {
		bad := vault.Ref{Path: c.Path, Params: c.Params, Computed: c.Computed}
		if c.Computed {
			return bad, fail.Mark(fail.Usage, fmt.Errorf("template secret of a computed path: not a Vault reference; expected %s", vault.RefHelp))
		}
		return bad, fmt.Errorf("template secret %q: %w", c.Key(), err)
	}
	r.Computed = c.Computed
	return r, nil
}

// Requests is what names and calls need of Vault: the distinct
// requests, in order, and for each request key the declared secrets and the
// template calls (by call key) that use its response, so that applying a
// response costs what uses it, not a scan of every secret and call. It is
// built once per fetch, or per daemon generation.
type Requests struct {
	refs  []vault.Ref
	users map[string]*requestUse
}

type requestUse struct {
	// ref is the request's place in refs.
	ref   int
	decls []config.SecretDecl
	calls []string
}

// IndexRequests indexes what the named secrets and the template calls ask
// of Vault. A request that the config also names literally (a declared
// secret, a template's literal call) is not Computed: its path is no secret.
func (b *Broker) IndexRequests(names []string, calls []templates.VaultCall) *Requests {
	idx := &Requests{users: map[string]*requestUse{}}
	use := func(r vault.Ref) *requestUse {
		r.Field = ""
		key := r.RequestKey()
		u := idx.users[key]
		if u == nil {
			u = &requestUse{ref: len(idx.refs)}
			idx.users[key] = u
			idx.refs = append(idx.refs, r)
		} else if !r.Computed {
			idx.refs[u.ref].Computed = false
		}
		return u
	}
	for _, n := range names {
		if d, ok := b.Declared(n); ok && d.Ref.Scheme == "vault" {
			u := use(d.Ref.Vault)
			u.decls = append(u.decls, d)
		}
	}
	for _, c := range calls {
		r, err := templateRef(c)
		u := use(r) // a malformed call is reported by fetch; its request stays listed
		if err == nil {
			u.calls = append(u.calls, c.Key())
		}
	}
	return idx
}

// Refs are the distinct Vault requests, in the order first used.
func (idx *Requests) Refs() []vault.Ref { return idx.refs }

// Users names the declared secrets and the template calls (by call key)
// that use the response to request key; ok is false for a request not in
// the index.
func (idx *Requests) Users(key string) (names, calls []string, ok bool) {
	u := idx.users[key]
	if u == nil {
		return nil, nil, false
	}
	for _, d := range u.decls {
		names = append(names, d.Name)
	}
	return names, u.calls, true
}

// Declared finds a declared secret by name.
func (b *Broker) Declared(name string) (config.SecretDecl, bool) {
	d, ok := b.decls[name]
	return d, ok
}

// Apply records a response to Vault request key in res: the declared
// secrets and template calls that use it take its new values.
func (b *Broker) Apply(res *Resolved, idx *Requests, key string, s *vault.Secret) error {
	res.Requests[key] = s
	u := idx.users[key]
	if u == nil {
		return nil
	}
	var errs []error
	for _, d := range u.decls {
		withField := *s
		withField.Ref = d.Ref.Vault
		v, err := withField.Value()
		if err != nil {
			delete(res.Values, d.Name)
			errs = append(errs, fmt.Errorf("secret %s: %w", d.Name, err))
			continue
		}
		res.Values[d.Name] = v
	}
	for _, k := range u.calls {
		res.Vault[k] = s.Raw
	}
	return errors.Join(errs...)
}

// fetch fetches the named declared secrets and the template Vault calls:
// every distinct Vault request once (reusing the responses in have, by
// request key, instead of asking Vault again), every envelope file parsed
// and verified once. The error names every secret that failed.
func (b *Broker) fetch(ctx context.Context, names []string, calls []templates.VaultCall, have map[string]*vault.Secret) (*Resolved, error) {
	res := newResolved()
	var errs []error
	names = b.WithCredentials(names)
	for _, n := range names {
		if _, ok := b.Declared(n); !ok {
			errs = append(errs, fail.Mark(fail.Usage, fmt.Errorf("secret %q is not declared", n)))
		}
	}
	for _, c := range calls {
		if _, err := templateRef(c); err != nil {
			errs = append(errs, err)
		}
	}
	idx := b.IndexRequests(names, calls)
	var need []vault.Ref
	for _, r := range idx.refs {
		if s, ok := have[r.RequestKey()]; ok {
			if err := b.Apply(res, idx, r.RequestKey(), s); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		need = append(need, r)
	}
	if len(need) > 0 {
		vc, err := b.VaultClient(ctx)
		if err != nil {
			return nil, err
		}
		got := make(map[string]*vault.Secret, len(need))
		store, err := b.restartCache(ctx)
		if err != nil {
			return nil, err
		}
		if store != nil {
			if need, err = b.reuseAll(ctx, vc, store, need, got); err != nil {
				errs = append(errs, err)
			}
		}
		secrets, err := vc.ReadMany(ctx, need, 16)
		if err != nil {
			errs = append(errs, err)
		}
		for i, s := range secrets {
			if s != nil {
				got[need[i].RequestKey()] = s
			}
		}
		for key, s := range got {
			if err := b.Apply(res, idx, key, s); err != nil {
				errs = append(errs, err)
			}
		}
		if store != nil {
			b.Remember(ctx, got)
		}
	}
	errs = append(errs, b.fetchLocals(ctx, names, res)...)
	errs = append(errs, b.fetchTokens(ctx, names, res)...)
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	return res, nil
}

// localConcurrency bounds the key-service calls (KMS Decrypt, Transit
// decrypt) made at once to open envelope: secrets.
const localConcurrency = 16

// fetchLocals reads the named file: and envelope: secrets into res. Every
// secrets file is parsed and its manifest verified once, first; then the
// entries and single envelopes are opened concurrently (each is its own
// key-service call), at most localConcurrency at a time.
func (b *Broker) fetchLocals(ctx context.Context, names []string, res *Resolved) []error {
	var local []config.SecretDecl
	envelopes := false
	for _, n := range names {
		if d, ok := b.Declared(n); ok && (d.Ref.Scheme == "file" || d.Ref.Scheme == "envelope") {
			local = append(local, d)
			envelopes = envelopes || d.Ref.Scheme == "envelope"
		}
	}
	if len(local) == 0 {
		return nil
	}
	errs := make([]error, len(local))
	var keys []envelope.KeyWrapper
	if envelopes {
		var err error
		if keys, err = b.envelopeKeys(ctx); err != nil {
			for i, d := range local {
				if d.Ref.Scheme == "envelope" {
					errs[i] = err
				}
			}
		}
	}
	// Files first, one by one: b.files is only written here.
	failedFile := map[string]error{}
	for i, d := range local {
		if d.Ref.Scheme != "envelope" || d.Ref.Entry == "" || errs[i] != nil {
			continue
		}
		p := b.cfg.Resolve(d.Ref.Path)
		if err, seen := failedFile[p]; seen {
			errs[i] = err
			continue
		}
		f, err := b.secretsFile(p)
		if err == nil {
			err = f.Verify(ctx, envelope.FileExpect{Context: b.cfg.SecretsFileContext(p)}, keys)
		}
		if err != nil {
			failedFile[p], errs[i] = err, err
		}
	}
	values := make([]string, len(local))
	var g errgroup.Group
	g.SetLimit(localConcurrency)
	for i, d := range local {
		if errs[i] != nil {
			continue
		}
		g.Go(func() error {
			values[i], errs[i] = b.FetchLocal(ctx, d)
			return nil
		})
	}
	g.Wait()
	var out []error
	for i, d := range local {
		if errs[i] != nil {
			out = append(out, fmt.Errorf("secret %s (%s): %w", d.Name, d.Ref, errs[i]))
			continue
		}
		res.Values[d.Name] = values[i]
	}
	return out
}

// secretsFile returns the parsed secrets file at p, reading it on first use.
func (b *Broker) secretsFile(p string) (*envelope.File, error) {
	if f, ok := b.files[p]; ok {
		return f, nil
	}
	data, err := readlimit.File(p, envelope.MaxFileLen, "secrets file "+p)
	if err != nil {
		return nil, err
	}
	f, err := envelope.ParseFile(data, p)
	if err != nil {
		return nil, err
	}
	b.files[p] = f
	return f, nil
}

// maxSingleEnvelopeFile bounds a file holding one envelope: its text form
// and surrounding white space.
var maxSingleEnvelopeFile = int64(envelope.MaxTextLen + 1024)

// FetchLocal reads a file: or envelope: secret. An envelope is opened only
// when it is sealed for the secret's name (or the name the reference pins)
// and carries every context pair the config requires.
func (b *Broker) FetchLocal(ctx context.Context, d config.SecretDecl) (string, error) {
	p := b.cfg.Resolve(d.Ref.Path)
	switch d.Ref.Scheme {
	case "file":
		data, err := readlimit.File(p, envelope.MaxPlaintextLen, "secret file "+p)
		if err != nil {
			return "", err
		}
		if len(data) == 0 {
			// One answer everywhere: an emptied source is unavailable, so
			// every output keeps the last good value (daemon) or its
			// previous file (run --once).
			return "", fail.Mark(fail.NotFound, fmt.Errorf("secret file %s is empty; keeping the last good value", p))
		}
		return string(data), nil
	case "envelope":
		keys, err := b.envelopeKeys(ctx)
		if err != nil {
			return "", err
		}
		file := envelope.FileExpect{Context: b.cfg.SecretsFileContext(p)}
		if d.Ref.Entry == "" {
			data, err := readlimit.File(p, maxSingleEnvelopeFile, "envelope file "+p)
			if err != nil {
				return "", err
			}
			e, err := envelope.ParseText(string(data))
			if err != nil {
				return "", fmt.Errorf("%s: %w", p, err)
			}
			want := envelope.Expect{Name: cmp.Or(d.Ref.Name, d.Name), Context: envelope.MergeContext(file.Context, d.Context)}
			pt, err := e.Open(ctx, want, keys)
			if err != nil {
				return "", fmt.Errorf("%s: %w", p, err)
			}
			return string(pt), nil
		}
		f, err := b.secretsFile(p)
		if err != nil {
			return "", err
		}
		pt, err := f.Open(ctx, envelope.Expect{Name: d.Ref.Entry, Context: d.Context}, file, keys)
		return string(pt), err
	}
	return "", fmt.Errorf("unknown scheme %q", d.Ref.Scheme)
}

// FetchUntil is fetch, retrying retryable failures (Vault unreachable or
// sealed, KMS throttling) with the one backoff policy until timeout has
// passed, logging each failed attempt with the next delay. When Vault is
// needed it logs in first, so a Vault that cannot be reached is reported as
// such (and res is nil).
//
// With allowStale, a Vault that cannot be reached does not stop a restart
// whose every Vault value is in the restart cache and young enough
// (staleFromCache): it renders from there at once.
func (b *Broker) FetchUntil(ctx context.Context, names []string, calls []templates.VaultCall, have map[string]*vault.Secret, timeout time.Duration, allowStale bool) (*Resolved, error) {
	if needsVault(b, names) || len(calls) > 0 {
		var stale *Resolved
		err := b.retryUntil(ctx, "connecting to Vault", timeout, func() error {
			_, err := b.VaultClient(ctx)
			if err != nil && allowStale && fail.KindOf(err).Retryable() {
				if res, ok := b.staleFromCache(ctx, names, b.IndexRequests(names, calls)); ok {
					stale = res
					return nil
				}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		if stale != nil {
			return stale, nil
		}
	}
	var res *Resolved
	err := b.retryUntil(ctx, "fetching secrets", timeout, func() (err error) {
		res, err = b.fetch(ctx, names, calls, have)
		return err
	})
	return res, err
}

// retryUntil calls try until it succeeds, fails in a way that is not
// retryable, or timeout has passed (zero: one attempt), waiting as
// backoff.Default says between tries and logging every failed attempt at
// warning level with the next delay.
func (b *Broker) retryUntil(ctx context.Context, what string, timeout time.Duration, try func() error) error {
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	retryable := func(err error) bool { return fail.KindOf(err).Retryable() }
	return backoff.Default().Retry(ctx, deadline, retryable, func(a backoff.Attempt) {
		if a.Last {
			if retryable(a.Err) && ctx.Err() == nil {
				b.log.Warn(what+" failed; giving up: --timeout has passed", "attempt", a.N, "timeout", timeout.String(), "error", a.Err)
			}
			return
		}
		b.log.Warn(what+" failed; retrying", "attempt", a.N, "retry_in", a.Next.Round(time.Millisecond).String(), "error", a.Err)
	}, try)
}

// ResolveDynamic finds and fetches what templates with computed `secret`,
// `secrets` or `pkiCert` arguments read, as consul-template does: render
// each such template with what is held, fetch the requests it lacked (all
// of a pass at once, concurrently, each once), and again, until no template
// lacks anything. It returns, for each output (by index in prepared), the
// calls it was found to make, so a daemon keeps them fresh.
func (b *Broker) ResolveDynamic(ctx context.Context, prepared []Prepared, res *Resolved) (map[int][]templates.VaultCall, error) {
	found := map[int][]templates.VaultCall{}
	tried := map[string]bool{}
	var errs []error
	for pass := 0; ; pass++ {
		var need []templates.VaultCall
		for i, p := range prepared {
			if p.Template == nil || !p.Template.Dynamic {
				continue
			}
			for _, c := range p.Template.Discover(templates.Data{Secrets: res.Values, Vault: res.Vault, Tokens: res.Tokens}) {
				found[i] = append(found[i], c)
				if !tried[c.Key()] {
					tried[c.Key()] = true
					need = append(need, c)
				}
			}
		}
		if len(need) == 0 {
			return found, errors.Join(errs...)
		}
		if pass == maxDiscoveryPasses {
			return found, fail.Mark(fail.Usage, fmt.Errorf("templates still found new Vault paths to read after %d passes (each pass reads what the previous one found); a path built from a secret built from a secret ... is limited to %d levels", maxDiscoveryPasses, maxDiscoveryPasses))
		}
		more, err := b.fetch(ctx, nil, need, res.Requests)
		if err != nil {
			errs = append(errs, err)
		}
		if more != nil {
			maps.Copy(res.Vault, more.Vault)
			maps.Copy(res.Requests, more.Requests)
		}
	}
}
