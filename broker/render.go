package broker

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/errgroup"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/format"
	"github.com/secrets-broker/secrets-broker/broker/keys"
	"github.com/secrets-broker/secrets-broker/broker/outdir"
	"github.com/secrets-broker/secrets-broker/broker/vaultcache"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/backoff"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"github.com/secrets-broker/secrets-broker/providers"
	"github.com/secrets-broker/secrets-broker/providers/vault"
	"github.com/secrets-broker/secrets-broker/templates"
)

// Broker fetches the secrets a config declares and renders its outputs.
type Broker struct {
	cfg   *config.Config
	cache *providers.DataKeyCache

	vault *vault.Client
	// sharedVault means vault belongs to someone else (the daemon, across
	// config reloads) and Close leaves it open.
	sharedVault bool
	keys        []envelope.KeyWrapper
	files       map[string]*envelope.File
	// restart is the restart cache (cfg.Cache), opened on first use.
	restart *vaultcache.Store
	// notRemembering is set once the Vault login names someone other
	// than the cache was opened for: nothing more is written to it.
	notRemembering atomic.Bool
	// kept is what was last written to the restart cache, by request.
	keptMu sync.Mutex
	kept   map[string]keptEntry
	// decls indexes cfg.Secrets by name.
	decls map[string]config.SecretDecl
	log   *slog.Logger
	// nameKey keys the names logs and metrics give computed Vault paths
	// (shownRequest); random, and shared by a daemon's generations.
	nameKey [32]byte
}

// New makes a broker for cfg. Nothing is contacted until needed.
func New(cfg *config.Config) *Broker {
	decls := make(map[string]config.SecretDecl, len(cfg.Secrets))
	for _, d := range cfg.Secrets {
		decls[d.Name] = d
	}
	b := &Broker{cfg: cfg, cache: providers.NewDataKeyCache(10000, cfg.KeyCacheTTL()), files: map[string]*envelope.File{}, decls: decls,
		log: slog.New(slog.DiscardHandler)}
	rand.Read(b.nameKey[:])
	return b
}

// shownRequest is how logs, metrics and /readyz name the Vault request of
// r: its key, or, for a path a template computed (it may be built from a
// secret's value), "computed:" and a keyed hash of the key. The hash names
// the same path the same way while the broker runs and tells nothing about
// it to someone who guesses the value, as a plain hash would.
func (b *Broker) shownRequest(r vault.Ref) string {
	if !r.Computed {
		return r.RequestKey()
	}
	m := hmac.New(sha256.New, b.nameKey[:])
	m.Write([]byte(r.RequestKey()))
	return "computed:" + hex.EncodeToString(m.Sum(nil)[:6])
}

// SetLogger sets where the broker logs retries and warnings (default:
// nowhere).
func (b *Broker) SetLogger(l *slog.Logger) {
	if l != nil {
		b.log = l
	}
}

// Close releases the Vault client and zeroes cached data keys.
func (b *Broker) Close() {
	if b.vault != nil && !b.sharedVault {
		b.vault.Close()
	}
	// A Vault client the daemon shares across reloads keeps this broker's
	// restart cache for its token: the cache stays open with it.
	if b.restart != nil && !b.sharedVault {
		b.restart.Close()
	}
	b.cache.Purge()
}

// VaultClient connects to Vault on first use.
func (b *Broker) VaultClient(ctx context.Context) (*vault.Client, error) {
	if b.vault != nil {
		return b.vault, nil
	}
	vc := vault.Config{}
	if v := b.cfg.Vault; v != nil {
		vc = vault.Config{Address: v.Address, Namespace: v.Namespace, CACert: b.cfg.Resolve(v.CACert), CAPath: b.cfg.Resolve(v.CAPath),
			ClientCert: b.cfg.Resolve(v.ClientCert), ClientKey: b.cfg.Resolve(v.ClientKey), TLSServerName: v.TLSServerName}
	}
	vc.Auth = b.vaultAuth()
	vc.Logger = b.log
	vc.Tokens = b.tokenStore()
	c, err := vault.Connect(ctx, vc)
	if err != nil {
		return nil, err
	}
	b.vault = c
	return c, nil
}

// vaultAuth is the configured Vault login; without one, a token from
// VAULT_TOKEN (vault.Connect's default too).
func (b *Broker) vaultAuth() vault.Auth {
	if b.cfg.Vault == nil || b.cfg.Vault.Auth == nil {
		return vault.TokenAuth{}
	}
	a := b.cfg.Vault.Auth
	switch a.Method {
	case "token", "":
		return vault.TokenAuth{File: b.cfg.Resolve(a.TokenFile)}
	case "approle":
		return vault.NewAppRoleAuth(vault.AppRoleAuth{Mount: a.Mount, RoleIDFile: b.cfg.Resolve(a.RoleIDFile), SecretIDFile: b.cfg.Resolve(a.SecretIDFile),
			Wrapped: a.SecretIDWrapped, RemoveSecretIDFile: a.RemoveSecretIDFile})
	case "kubernetes":
		return vault.KubernetesAuth{Mount: a.Mount, Role: a.Role, TokenFile: b.cfg.Resolve(a.TokenPath)}
	case "jwt":
		return vault.JWTAuth{Mount: a.Mount, Role: a.Role, JWTFile: b.cfg.Resolve(a.JWTFile)}
	}
	return vault.TokenAuth{} // the method was checked when the config loaded
}

func (b *Broker) envelopeKeys(ctx context.Context) ([]envelope.KeyWrapper, error) {
	if b.keys != nil {
		return b.keys, nil
	}
	keys, err := b.keyConfig(b.cfg.Keys).ForOpening(ctx)
	if err != nil {
		return nil, err
	}
	b.keys = keys
	return keys, nil
}

// keyConfig is the config's key setup for specs: its key files, the
// data-key cache, the broker's log and its Vault login for Transit keys.
func (b *Broker) keyConfig(specs []string) keys.Config {
	files := make([]string, len(b.cfg.KeyFiles))
	for i, f := range b.cfg.KeyFiles {
		files[i] = b.cfg.Resolve(f)
	}
	return keys.Config{Specs: specs, KeyFiles: files, Cache: b.cache, Log: b.log, Vault: func(ctx context.Context) (*api.Client, error) {
		c, err := b.VaultClient(ctx)
		if err != nil {
			return nil, err
		}
		return c.API(), nil
	}}
}

// Resolved holds fetched secrets.
type Resolved struct {
	// Values maps declared names to values.
	Values map[string]string
	// Vault maps template Vault calls to responses.
	Vault map[string]*api.Secret
	// Requests maps each distinct Vault request (vault.Ref.RequestKey) to
	// its latest response, with its lease.
	Requests map[string]*vault.Secret
}

func newResolved() *Resolved {
	return &Resolved{Values: map[string]string{}, Vault: map[string]*api.Secret{}, Requests: map[string]*vault.Secret{}}
}

// clone copies the maps (not the secrets), for rendering while watchers
// update the original.
func (r *Resolved) clone() *Resolved {
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

// requestIndex is what names and calls need of Vault: the distinct
// requests, in order, and for each request key the declared secrets and the
// template calls (by call key) that use its response, so that applying a
// response costs what uses it, not a scan of every secret and call. It is
// built once per fetch, or per daemon generation.
type requestIndex struct {
	refs  []vault.Ref
	users map[string]*requestUse
}

type requestUse struct {
	// ref is the request's place in refs.
	ref   int
	decls []config.SecretDecl
	calls []string
}

// A request that the config also names literally (a declared secret, a
// template's literal call) is not Computed: its path is no secret.
func (b *Broker) indexRequests(names []string, calls []templates.VaultCall) *requestIndex {
	idx := &requestIndex{users: map[string]*requestUse{}}
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
		if d, ok := b.lookup(n); ok && d.Ref.Scheme == "vault" {
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

// lookup finds a declared secret by name.
func (b *Broker) lookup(name string) (config.SecretDecl, bool) {
	d, ok := b.decls[name]
	return d, ok
}

// apply records a response to Vault request key in res: the declared
// secrets and template calls that use it take its new values.
func (b *Broker) apply(res *Resolved, idx *requestIndex, key string, s *vault.Secret) error {
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

// Fetch fetches the named declared secrets and the template Vault calls:
// every distinct Vault request once, every envelope file parsed and verified
// once. The error names every secret that failed.
func (b *Broker) Fetch(ctx context.Context, names []string, calls []templates.VaultCall) (*Resolved, error) {
	return b.fetch(ctx, names, calls, nil)
}

// fetch is Fetch reusing the responses in have (by request key) instead of
// asking Vault again.
func (b *Broker) fetch(ctx context.Context, names []string, calls []templates.VaultCall, have map[string]*vault.Secret) (*Resolved, error) {
	res := newResolved()
	var errs []error
	for _, n := range names {
		if _, ok := b.lookup(n); !ok {
			errs = append(errs, fail.Mark(fail.Usage, fmt.Errorf("secret %q is not declared", n)))
		}
	}
	for _, c := range calls {
		if _, err := templateRef(c); err != nil {
			errs = append(errs, err)
		}
	}
	idx := b.indexRequests(names, calls)
	var need []vault.Ref
	for _, r := range idx.refs {
		if s, ok := have[r.RequestKey()]; ok {
			if err := b.apply(res, idx, r.RequestKey(), s); err != nil {
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
			if err := b.apply(res, idx, key, s); err != nil {
				errs = append(errs, err)
			}
		}
		if store != nil {
			b.remember(ctx, got)
		}
	}
	errs = append(errs, b.fetchLocals(ctx, names, res)...)
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
		if d, ok := b.lookup(n); ok && d.Ref.Scheme != "vault" {
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
			values[i], errs[i] = b.fetchLocal(ctx, d)
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

// fetchLocal reads a file: or envelope: secret. An envelope is opened only
// when it is sealed for the secret's name (or the name the reference pins)
// and carries every context pair the config requires.
func (b *Broker) fetchLocal(ctx context.Context, d config.SecretDecl) (string, error) {
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

// Prepared is an output ready to render: its template parsed, its needs known.
type Prepared struct {
	Output   config.Output
	Spec     outdir.Spec
	Template *templates.Template
	Secrets  []string
}

// Prepare parses every template and works out what each output needs,
// without contacting anything. validate runs only this.
func (b *Broker) Prepare() ([]Prepared, error) {
	declared := func(n string) bool { _, ok := b.lookup(n); return ok }
	var out []Prepared
	var errs []error
	for _, o := range b.cfg.Outputs {
		p := Prepared{Output: o}
		mode, _ := o.FileMode()
		p.Spec = outdir.Spec{Path: o.Path, Mode: mode, UID: -1, GID: -1, AllowSymlink: o.AllowSymlink, AllowEmpty: o.AllowEmpty}
		if err := resolveOwner(&p.Spec, o); err != nil {
			errs = append(errs, fmt.Errorf("output %s: %w", o.Path, err))
			continue
		}
		switch o.Format {
		case config.FormatTemplate:
			name, text := "inline template of "+o.Path, o.TemplateText
			if o.Template != "" {
				name = o.Template
				data, err := readlimit.File(b.cfg.Resolve(o.Template), templates.MaxTemplateLen, "template "+o.Template)
				if err != nil {
					errs = append(errs, fmt.Errorf("output %s: %w", o.Path, err))
					continue
				}
				text = string(data)
			}
			t, err := templates.Parse(name, text, templates.Options{Declared: declared, FileSandbox: b.cfg.Resolve(b.cfg.FileSandbox)})
			if err != nil {
				errs = append(errs, fmt.Errorf("output %s: %w", o.Path, err))
				continue
			}
			p.Template, p.Secrets = t, t.Secrets
		case config.FormatRaw:
			p.Secrets = []string{o.Secret}
		default:
			p.Secrets = o.Secrets
			if len(p.Secrets) == 0 {
				for _, d := range b.cfg.Secrets {
					p.Secrets = append(p.Secrets, d.Name)
				}
			}
			if o.Format == config.FormatDotenv {
				for _, s := range p.Secrets {
					if !config.ValidEnvName(s) {
						errs = append(errs, fail.Mark(fail.Usage, fmt.Errorf("output %s: secret %q is not a valid dotenv variable name (letters, digits, _)", o.Path, s)))
					}
				}
			}
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, fail.Mark(fail.Usage, errors.Join(errs...))
	}
	return out, nil
}

func resolveOwner(spec *outdir.Spec, o config.Output) error {
	if (o.User != "" || o.Group != "") && !fileowner.Supported {
		return fail.Mark(fail.Usage, errors.New("user and group are not supported on this platform (Windows): remove them"))
	}
	if o.User != "" {
		id, err := fileowner.LookupUser(o.User)
		if err != nil {
			return fmt.Errorf("user %q: %w", o.User, err)
		}
		spec.UID = id
	}
	if o.Group != "" {
		id, err := fileowner.LookupGroup(o.Group)
		if err != nil {
			return fmt.Errorf("group %q: %w", o.Group, err)
		}
		spec.GID = id
	}
	return nil
}

// Needs lists the declared secrets and Vault calls of prepared outputs,
// each once.
func Needs(ps []Prepared) ([]string, []templates.VaultCall) {
	seenS := map[string]bool{}
	seenV := map[string]bool{}
	var names []string
	var calls []templates.VaultCall
	for _, p := range ps {
		for _, s := range p.Secrets {
			if !seenS[s] {
				seenS[s] = true
				names = append(names, s)
			}
		}
		if p.Template != nil {
			for _, c := range p.Template.Vault {
				if !seenV[c.Key()] {
					seenV[c.Key()] = true
					calls = append(calls, c)
				}
			}
		}
	}
	return names, calls
}

// Render produces one output's bytes from fetched secrets.
func Render(p Prepared, r *Resolved) ([]byte, error) {
	switch p.Output.Format {
	case config.FormatTemplate:
		return p.Template.Execute(templates.Data{Secrets: r.Values, Vault: r.Vault})
	case config.FormatRaw:
		return []byte(r.Values[p.Output.Secret]), nil
	default: // dotenv, json, yaml
		values := make([]envelope.Plain, len(p.Secrets))
		for i, s := range p.Secrets {
			values[i] = envelope.Plain{Name: s, Value: []byte(r.Values[s])}
		}
		return format.Marshal(values, p.Output.Format)
	}
}

// OutputResult is what happened to one output.
type OutputResult struct {
	Path    string
	Changed bool
	Err     error
	// Sum is the SHA-256 of the rendered content (when it rendered), so
	// the daemon can tell a restored file from a changed one.
	Sum [32]byte
}

// Report is the result of rendering every output.
type Report struct {
	Results []OutputResult
}

// Err names every output that failed, or is nil.
func (r Report) Err() error {
	var errs []error
	var failed []string
	for _, res := range r.Results {
		if res.Err != nil {
			failed = append(failed, res.Path)
			errs = append(errs, res.Err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d output(s) failed (%s); their previous files are left as they were: %w", len(failed), strings.Join(failed, ", "), errors.Join(errs...))
}

// RenderOptions tune RenderOnce.
type RenderOptions struct {
	// DryRun reports which files would change and writes nothing.
	DryRun bool
	// Timeout bounds retrying an unreachable Vault or KMS (init containers
	// must not hang, vault #6001). Zero means one attempt.
	Timeout time.Duration
}

// RenderOnce fetches every secret the outputs need, renders them all in
// memory, and only then writes each one atomically. An output that fails
// leaves its previous file intact; the report names it.
func (b *Broker) RenderOnce(ctx context.Context, opts RenderOptions) (Report, error) {
	prepared, err := b.Prepare()
	if err != nil {
		return Report{}, err
	}
	if len(prepared) == 0 {
		return Report{}, fail.Mark(fail.Usage, fmt.Errorf("config %s has no outputs: nothing to render. Give a config (-c FILE) with outputs, or use exec to pass --secret values to a command", b.cfg.Source))
	}
	names, calls := Needs(prepared)
	res, fetchErr := b.fetchUntil(ctx, names, calls, nil, opts.Timeout, true)
	if res != nil {
		if _, err := b.resolveDynamic(ctx, prepared, res); err != nil {
			fetchErr = errors.Join(fetchErr, err)
		}
	}
	perms, err := b.cfg.DirPerms()
	if err != nil {
		return Report{}, fail.Mark(fail.Usage, err)
	}
	dir, err := outdir.Open(b.cfg.Resolve(b.cfg.OutputRoot), perms)
	if err != nil {
		return Report{}, err
	}
	defer dir.Close()
	rep := writeAll(dir, prepared, res, opts.DryRun)
	if fetchErr != nil {
		return rep, fetchErr
	}
	return rep, rep.Err()
}

// fetchUntil is fetch, retrying retryable failures (Vault unreachable or
// sealed, KMS throttling) with the one backoff policy until timeout has
// passed, logging each failed attempt with the next delay. When Vault is
// needed it logs in first, so a Vault that cannot be reached is reported as
// such (and res is nil).
//
// With allowStale, a Vault that cannot be reached does not stop a restart
// whose every Vault value is in the restart cache and young enough
// (staleFromCache): it renders from there at once.
func (b *Broker) fetchUntil(ctx context.Context, names []string, calls []templates.VaultCall, have map[string]*vault.Secret, timeout time.Duration, allowStale bool) (*Resolved, error) {
	if needsVault(b, names) || len(calls) > 0 {
		var stale *Resolved
		err := b.retryUntil(ctx, "connecting to Vault", timeout, func() error {
			_, err := b.VaultClient(ctx)
			if err != nil && allowStale && fail.KindOf(err).Retryable() {
				if res, ok := b.staleFromCache(ctx, names, b.indexRequests(names, calls)); ok {
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

// writeConcurrency bounds the outputs written at once.
const writeConcurrency = 8

// writeAll renders every prepared output from res and writes the ones
// that rendered (all of a bundle or none of it). Outputs that need a secret
// missing from res fail, naming it.
func writeAll(dir *outdir.Dir, prepared []Prepared, res *Resolved, dryRun bool) Report {
	var rep Report
	bundles := map[string][]int{}
	var order []string
	for i, p := range prepared {
		if b := p.Output.Bundle; b != "" {
			if _, ok := bundles[b]; !ok {
				order = append(order, b)
			}
			bundles[b] = append(bundles[b], i)
		}
	}
	rendered := make([][]byte, len(prepared))
	errs := make([]error, len(prepared))
	for i, p := range prepared {
		if res == nil {
			errs[i] = fmt.Errorf("output %s: not rendered: its secrets could not be fetched", p.Output.Path)
			continue
		}
		if missing := missingFor(p, res); missing != "" {
			errs[i] = fmt.Errorf("output %s: secret %s is unavailable", p.Output.Path, missing)
			continue
		}
		data, err := Render(p, res)
		if err != nil {
			errs[i] = fmt.Errorf("output %s: %w", p.Output.Path, err)
			continue
		}
		rendered[i] = data
	}
	// Files are written a few at a time: each write waits on two fsyncs,
	// which the file system can overlap.
	results := make([]OutputResult, len(prepared))
	batch := !dryRun && dir != nil // a daemon that only supervises a command has no output directory
	if batch {
		dir.BeginBatch()
	}
	var g errgroup.Group
	g.SetLimit(writeConcurrency)
	for i, p := range prepared {
		if p.Output.Bundle != "" {
			continue
		}
		g.Go(func() error {
			r := OutputResult{Path: p.Output.Path, Err: errs[i]}
			if r.Err == nil {
				r.Sum = sha256.Sum256(rendered[i])
				if dryRun {
					same, err := dir.Unchanged(p.Spec, rendered[i])
					r.Changed, r.Err = !same, err
				} else {
					r.Changed, r.Err = dir.Write(p.Spec, rendered[i])
				}
			}
			results[i] = r
			return nil
		})
	}
	_ = g.Wait()
	if batch {
		dir.EndBatch() // each directory written to is synced once
	}
	for i, p := range prepared {
		if p.Output.Bundle == "" {
			rep.Results = append(rep.Results, results[i])
		}
	}
	for _, name := range order {
		idx := bundles[name]
		var bundleErr error
		var specs []outdir.Spec
		var data [][]byte
		for _, i := range idx {
			if errs[i] != nil && bundleErr == nil {
				bundleErr = fmt.Errorf("bundle %s not switched: %w", name, errs[i])
			}
			specs = append(specs, prepared[i].Spec)
			data = append(data, rendered[i])
		}
		changed := false
		if bundleErr == nil {
			if dryRun {
				var same bool
				same, bundleErr = dir.BundleUnchanged(name, specs, data)
				changed = !same
			} else {
				changed, bundleErr = dir.WriteBundle(name, specs, data)
			}
		}
		for _, i := range idx {
			r := OutputResult{Path: prepared[i].Output.Path, Changed: changed, Err: bundleErr}
			if bundleErr == nil {
				r.Sum = sha256.Sum256(rendered[i])
			}
			rep.Results = append(rep.Results, r)
		}
	}
	for _, d := range rendered {
		clear(d)
	}
	return rep
}

func missingFor(p Prepared, r *Resolved) string {
	for _, s := range p.Secrets {
		if _, ok := r.Values[s]; !ok {
			return s
		}
	}
	if p.Template != nil {
		for _, c := range p.Template.Vault {
			if _, ok := r.Vault[c.Key()]; !ok {
				return "vault:" + c.Key()
			}
		}
	}
	return ""
}

// maxDiscoveryPasses bounds how many times templates with computed Vault
// paths are rendered to find what they read (a path built from a secret
// that is built from a secret ... needs one pass per level).
const maxDiscoveryPasses = 8

// resolveDynamic finds and fetches what templates with computed `secret`,
// `secrets` or `pkiCert` arguments read, as consul-template does: render
// each such template with what is held, fetch the requests it lacked (all
// of a pass at once, concurrently, each once), and again, until no template
// lacks anything. It returns, for each output (by index in prepared), the
// calls it was found to make, so a daemon keeps them fresh.
func (b *Broker) resolveDynamic(ctx context.Context, prepared []Prepared, res *Resolved) (map[int][]templates.VaultCall, error) {
	found := map[int][]templates.VaultCall{}
	tried := map[string]bool{}
	var errs []error
	for pass := 0; ; pass++ {
		var need []templates.VaultCall
		for i, p := range prepared {
			if p.Template == nil || !p.Template.Dynamic {
				continue
			}
			for _, c := range p.Template.Discover(templates.Data{Secrets: res.Values, Vault: res.Vault}) {
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
