package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/health"
	"github.com/secrets-broker/secrets-broker/broker/outdir"
	"github.com/secrets-broker/secrets-broker/internal/backoff"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers/vault"
	"github.com/secrets-broker/secrets-broker/templates"
)

// generation is one loaded config and everything running for it.
type generation struct {
	// id tells this generation's stale marks on /readyz from an older one's.
	id uint64
	// started is when it began reading its config and sources.
	started time.Time
	// heldOver are the Vault responses the previous generation handed
	// over, by request key: not read afresh at the start.
	heldOver map[string]*vault.Secret
	d        *daemon
	cfg      *config.Config
	b        *broker.Broker
	prepared []broker.Prepared
	names    []string
	calls    []templates.VaultCall
	requests *broker.Requests
	dir      *outdir.Roots

	// fromCache is set when the generation started with Vault unreachable
	// and rendered its Vault values from the restart cache: nothing of
	// Vault's is kept fresh until Vault answers, and then a reload fetches
	// everything afresh (waitForVault).
	fromCache bool

	mu  sync.Mutex
	res *broker.Resolved
	// dirty are the outputs (indices into prepared) whose inputs changed
	// since the last pass; allDirty asks for every output (start, reload,
	// an output deleted or changed by someone). A refresh of one secret
	// renders the outputs that use it, not every output.
	dirty    map[int]bool
	allDirty bool
	// failed are the outputs whose last render or write failed: they are
	// tried again on every pass.
	failed map[string]bool
	// byPath indexes prepared by output path.
	byPath map[string]int
	// usersOf maps a declared secret's name, or a template call's key, to
	// the outputs that use it.
	usersOf map[string][]int
	// written is the hash of what each output was last rendered as, so a
	// file written again with the same content is a restore (someone
	// deleted or changed it), not a change.
	written map[string][32]byte
	// holds keeps outputs with a wait of their own until it is over.
	holds holds

	trigger chan struct{}
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	// paused makes passes do nothing while a reload starts the next
	// generation; passMu is held by a running pass.
	paused atomic.Bool
	passMu sync.Mutex
}

// pause stops passes: it takes the pass lock (so a pass in flight
// finishes first) and marks the generation paused under it.
func (g *generation) pause() {
	g.passMu.Lock()
	defer g.passMu.Unlock()
	g.paused.Store(true)
}

// startGeneration loads the config and renders every output. On a reload,
// the files that change run their notify (the first render at start does
// not: the app starts after it).
func (d *daemon) startGeneration(parent context.Context, have map[string]*vault.Secret, reload bool) (*generation, error) {
	// Whatever changes after this is seen: by the watchers once they run,
	// and before that by comparing modification times (watchFiles).
	started := time.Now()
	cfg, err := d.opts.Config.Load()
	if err != nil {
		return nil, err
	}
	b := broker.New(cfg)
	b.SetNameKey(d.nameKey)
	b.SetLogger(d.log)
	b.SetLoginObserver(d.m.Login)
	d.shareVault(b)
	prepared, err := b.Prepare()
	if err != nil {
		b.Close()
		return nil, err
	}
	if len(prepared) == 0 && d.execCommand(cfg) == nil {
		b.Close()
		return nil, fail.Mark(fail.Usage, fmt.Errorf("config %s has no outputs and no command to run: nothing to keep fresh. Add outputs, or run a command with --exec -- COMMAND (or exec.command)", cfg.Source))
	}
	var dir *outdir.Roots
	if len(prepared) > 0 {
		perms, err := cfg.DirPerms()
		if err != nil {
			b.Close()
			return nil, err
		}
		dir, err = outdir.OpenRoots(cfg.Roots(), perms)
		if err != nil {
			b.Close()
			return nil, err
		}
	}
	names, calls := broker.Needs(prepared)
	if d.execCommand(cfg) != nil {
		envMap, err := b.ExecEnv()
		if err != nil {
			if dir != nil {
				dir.Close()
			}
			b.Close()
			return nil, fmt.Errorf("exec: %w", err)
		}
		for _, n := range sortedValues(envMap) {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	// The credentials tokens are requested with are kept fresh like any
	// secret, so that a rotated client secret is used at the next refresh.
	names = b.WithCredentials(names)
	ctx, cancel := context.WithCancel(parent)
	d.generations++
	g := &generation{id: d.generations, started: started, heldOver: have, d: d, cfg: cfg, b: b, prepared: prepared, names: names, calls: calls, requests: b.IndexRequests(names, calls), dir: dir, trigger: make(chan struct{}, 1), cancel: cancel,
		dirty: map[int]bool{}, allDirty: true, usersOf: outputUsers(prepared), failed: map[string]bool{}, byPath: map[string]int{}}
	for i, p := range prepared {
		g.byPath[p.Name()] = i
	}
	// Expired data keys are zeroed on a timer; a reload starts a new
	// broker with an empty cache, and stopping this one purges it.
	g.wg.Add(1)
	go func() { defer g.wg.Done(); b.RunSweeper(ctx) }()
	// FetchUntil logs in first; a start or reload that cannot reach Vault
	// (no result at all) fails before writing anything, so it changes no
	// file.
	// At the first start, a config with a restart cache may render KV values
	// from it while Vault cannot be reached (cache.max_stale).
	res, err := b.FetchUntil(ctx, names, calls, have, d.opts.Timeout, !reload && have == nil && cfg.Cache != nil)
	if res == nil && err != nil {
		g.stop()
		return nil, err
	}
	g.fromCache = !b.Connected() && len(g.requests.Refs()) > 0
	if g.fromCache {
		for _, r := range g.requests.Refs() {
			d.health.SetStale(g.id, "vault:"+b.ShownRequest(r), fail.Mark(fail.Unavailable, errors.New("rendered from the restart cache")))
		}
	}
	// Templates with computed Vault paths: find and fetch what they read;
	// startWatchers keeps those requests fresh like the literal ones.
	g.res = res
	if !g.fromCache {
		found, derr := b.ResolveDynamic(ctx, prepared, res)
		err = errors.Join(err, derr)
		g.mu.Lock()
		g.adopt(prepared, found, res)
		g.mu.Unlock()
	}
	if err != nil {
		d.m.FetchErrors.With("start").Inc()
		d.log.Warn("some secrets are unavailable; their outputs wait, the rest are rendered", "error", err)
	}
	g.pass(ctx, reload)
	if err := g.startWatchers(ctx); err != nil {
		g.stop()
		return nil, err
	}
	d.adoptVault(b)
	g.wg.Add(1)
	go func() { defer g.wg.Done(); g.renderLoop(ctx) }()
	return g, nil
}

// listener is where the daemon serves probes and metrics; no Addr: off.
func (g *generation) listener() health.Listener {
	r := g.cfg.Refresh
	if r == nil {
		return health.Listener{}
	}
	l := health.Listener{Addr: r.MetricsAddress, RequestsPerSecond: r.MetricsRequestsPerSecond, MaxConnections: r.MetricsMaxConnections}
	if r.MetricsTLSCert != "" {
		l.CertFile, l.KeyFile = g.cfg.Resolve(r.MetricsTLSCert), g.cfg.Resolve(r.MetricsTLSKey)
	}
	return l
}

func (g *generation) refresh() config.Refresh {
	if g.cfg.Refresh != nil {
		return *g.cfg.Refresh
	}
	return config.Refresh{}
}

// heldRequests are the Vault responses this generation holds, for the next.
func (g *generation) heldRequests() map[string]*vault.Secret {
	if g.fromCache {
		return nil // values from the cache are not carried over: fetch afresh
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]*vault.Secret, len(g.res.Requests))
	for k, v := range g.res.Requests {
		out[k] = v
	}
	return out
}

func (g *generation) stop() {
	g.cancel()
	g.wg.Wait()
	g.mu.Lock()
	if g.holds.timer != nil {
		g.holds.timer.Stop()
	}
	g.mu.Unlock()
	if g.dir != nil {
		g.dir.Close()
	}
	g.b.Close()
}

func (g *generation) kick() {
	select {
	case g.trigger <- struct{}{}:
	default:
	}
}

// startWatchers starts one Keep per distinct Vault request and one
// fsnotify watcher for files, templates and the config.
func (g *generation) startWatchers(ctx context.Context) error {
	refs := g.requests.Refs()
	if len(refs) > 0 && g.fromCache {
		g.wg.Add(1)
		go func() { defer g.wg.Done(); g.waitForVault(ctx) }()
	} else if len(refs) > 0 {
		vc, err := g.b.VaultClient(ctx)
		if err != nil {
			return err
		}
		g.mu.Lock()
		initial := make(map[string]*vault.Secret, len(g.res.Requests))
		for k, v := range g.res.Requests {
			initial[k] = v
		}
		g.mu.Unlock()
		for _, r := range refs {
			g.keep(ctx, vc, r, initial[r.RequestKey()])
		}
	}
	g.keepTokens(ctx)
	return g.watchFiles(ctx)
}

// keep starts the watcher of one Vault request, from initial when it is
// already held.
func (g *generation) keep(ctx context.Context, vc *vault.Client, r vault.Ref, initial *vault.Secret) {
	opts := vault.KeepOptions{StaticInterval: g.refresh().StaticInterval, Initial: initial, RetryPermanent: true, CertRenewal: g.refresh().CertificateRenewal}
	g.d.m.SetExpiry(g.b.ShownRequest(r), initial)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := vc.Keep(ctx, r, opts, func(ev vault.Event) { g.onVault(ctx, r, ev) })
		if err != nil && ctx.Err() == nil {
			g.d.log.Error("stopped refreshing a Vault secret", "path", g.b.ShownRequest(r), "error", err)
		}
	}()
}

// discover finds what the templates with computed paths among todo now
// read that the generation does not hold (a new key in a listed folder, a
// path built from a value that changed), fetches it into res, and keeps it
// fresh from then on, as the paths found at start are.
func (g *generation) discover(ctx context.Context, todo []broker.Prepared, res *broker.Resolved) {
	if g.fromCache || !slices.ContainsFunc(todo, func(p broker.Prepared) bool { return p.Template != nil && p.Template.Dynamic }) {
		return
	}
	found, err := g.b.ResolveDynamic(ctx, todo, res)
	if err != nil {
		g.d.log.Warn("a template's computed Vault paths could not all be fetched", "error", err)
	}
	if len(found) == 0 {
		return
	}
	vc, verr := g.b.VaultClient(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.adopt(todo, found, res) {
		if verr == nil {
			g.keep(ctx, vc, r, g.res.Requests[r.RequestKey()])
		}
	}
}

// adopt records the calls ResolveDynamic found for outputs of todo (by
// index): which outputs use them, their responses in g.res, and the
// generation's request index; it returns the requests that are new. g.mu
// must be held.
func (g *generation) adopt(todo []broker.Prepared, found map[int][]templates.VaultCall, res *broker.Resolved) []vault.Ref {
	if len(found) == 0 {
		return nil
	}
	known := map[string]bool{}
	for _, c := range g.calls {
		known[c.Key()] = true
	}
	for i, cs := range found {
		out := g.byPath[todo[i].Name()]
		for _, c := range cs {
			if !slices.Contains(g.usersOf[c.Key()], out) {
				g.usersOf[c.Key()] = append(g.usersOf[c.Key()], out)
			}
			if !known[c.Key()] {
				known[c.Key()] = true
				g.calls = append(g.calls, c)
			}
			if raw, ok := res.Vault[c.Key()]; ok {
				g.res.Vault[c.Key()] = raw
			}
		}
	}
	before := g.requests
	g.requests = g.b.IndexRequests(g.names, g.calls)
	var added []vault.Ref
	for _, r := range g.requests.Refs() {
		key := r.RequestKey()
		if knownBefore(before, key) {
			continue
		}
		if s := res.Requests[key]; s != nil {
			g.res.Requests[key] = s
		}
		added = append(added, r)
	}
	return added
}

// waitForVault, for a generation that rendered from the restart cache,
// tries to reach Vault with the one backoff policy, logging every failed
// attempt, and asks for a reload once it answers: the next generation
// fetches everything afresh and keeps it fresh. It asks again (after the
// next delay) while this generation still runs, in case that reload fails.
func (g *generation) waitForVault(ctx context.Context) {
	for attempt := 0; ; attempt++ {
		wait := backoff.Default().Delay(attempt)
		if _, err := g.b.VaultClient(ctx); err == nil {
			select {
			case g.d.reloadCh <- "Vault answers again: fetching what was rendered from the restart cache":
			default:
			}
		} else if ctx.Err() == nil {
			g.d.log.Warn("Vault is still unreachable; outputs keep the values from the restart cache", "attempt", attempt+1, "retry_in", wait.Round(time.Millisecond).String(), "error", err)
		}
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

func (g *generation) onVault(ctx context.Context, r vault.Ref, ev vault.Event) {
	m := g.d.m
	key, shown := r.RequestKey(), g.b.ShownRequest(r)
	if ev.Secret != nil && g.cfg.Cache != nil {
		g.b.Remember(ctx, map[string]*vault.Secret{key: ev.Secret})
	}
	switch {
	case ev.Err != nil:
		// The value can no longer be vouched for (deleted, denied, Vault
		// unreachable): the outputs keep it, and /readyz says so until a
		// re-read or renewal succeeds.
		g.mu.Lock()
		outputs := g.outputsUsing(key)
		g.mu.Unlock()
		g.d.health.SetStale(g.id, "vault:"+shown, ev.Err, outputs...)
		m.FetchErrors.With("vault").Inc()
		if ev.RetryIn > 0 {
			g.d.log.Warn("fetching a Vault secret failed; retrying", "path", shown, "retry_in", ev.RetryIn.Round(time.Millisecond).String(), "error", ev.Err)
		} else {
			g.d.log.Warn("fetching a Vault secret failed; giving up on it", "path", shown, "error", ev.Err)
		}
	case ev.Renewed:
		g.d.health.SetStale(g.id, "vault:"+shown, nil)
		m.Renewals.Inc()
		m.SetExpiry(shown, ev.Secret)
		g.mu.Lock()
		g.res.Requests[key] = ev.Secret
		g.mu.Unlock()
	default:
		g.d.health.SetStale(g.id, "vault:"+shown, nil)
		m.Fetches.With("vault").Inc()
		m.SetExpiry(shown, ev.Secret)
		g.mu.Lock()
		err := g.b.Apply(g.res, g.requests, key, ev.Secret)
		for i := range g.outputsOf(key) {
			g.touch(i)
		}
		g.mu.Unlock()
		if err != nil {
			g.d.log.Warn("a refreshed Vault secret lacks a field an output needs", "path", shown, "error", err)
		}
		g.kick()
	}
}

func knownBefore(idx *broker.Requests, key string) bool {
	_, _, ok := idx.Users(key)
	return ok
}
