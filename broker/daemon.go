package broker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/health"
	"github.com/secrets-broker/secrets-broker/broker/outdir"
	"github.com/secrets-broker/secrets-broker/broker/supervisor"
	"github.com/secrets-broker/secrets-broker/internal/backoff"
	"github.com/secrets-broker/secrets-broker/internal/credenv"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
	"github.com/secrets-broker/secrets-broker/internal/memtrim"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"github.com/secrets-broker/secrets-broker/providers/vault"
	"github.com/secrets-broker/secrets-broker/templates"
)

// DaemonOptions configure RunDaemon.
type DaemonOptions struct {
	// Config is loaded at start and again on Reload or when its file
	// changes.
	Config config.Source
	// Timeout bounds retrying an unreachable source at start and reload.
	Timeout time.Duration
	Logger  *slog.Logger
	// Reload asks for the config to be read again (SIGHUP).
	Reload <-chan struct{}
	// Rendered, when set, is called after every render pass.
	Rendered func(Report)
	// IdleTrim is how long after its last render pass the daemon, idle,
	// returns free heap and drops its executable's pages (memtrim); zero means
	// 10 s, negative never.
	IdleTrim time.Duration
	// Trimmed, when set, is called after each idle trim with the resident
	// memory before and after.
	Trimmed func(before, after memtrim.Stats)
	// Exec is the command to supervise (run --exec -- COMMAND; or the
	// config's exec.command when Exec.Command is empty), with its stdio,
	// base environment and environment rules.
	Exec ExecOptions
}

// RunDaemon renders every output, then keeps them fresh until ctx ends:
// Vault leases are renewed and rotated secrets re-fetched before they
// expire (vault.Client.Keep, one watcher per distinct request), KV secrets
// are re-read every refresh.static_interval, envelope and plain files and
// templates are watched (fsnotify). Changes are debounced
// (refresh.wait.min/max), only changed files are written, and only their
// notify actions run. The config is reloaded on Reload or when its file
// changes; a config that does not load leaves the running one in place, and
// secrets already held are carried over (no second set of dynamic
// credentials).
func RunDaemon(ctx context.Context, opts DaemonOptions) error {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	// The main loop is alive while it goes round within a minute, plus the
	// time a reload may spend retrying Vault (twice the timeout: login,
	// then fetch).
	d := &daemon{opts: opts, log: opts.Logger, m: health.NewMetrics(), health: health.NewState(time.Minute + 2*opts.Timeout), reloadCh: make(chan string, 1)}
	rand.Read(d.nameKey[:])
	defer d.closeVault()
	// As PID 1 (a container's entrypoint, or unshare -fp), orphans the
	// command leaves behind are re-parented here and must be reaped.
	reaper, stopReaper := supervisor.StartReaper(ctx)
	defer stopReaper()
	d.reaper = reaper
	if d.opts.IdleTrim == 0 {
		d.opts.IdleTrim = idleTrimAfter
	}
	d.idle = time.AfterFunc(d.opts.IdleTrim, d.trimMemory)
	defer d.idle.Stop()
	gen, err := d.startGeneration(ctx, nil, false)
	if err != nil {
		return err
	}
	var srv *http.Server
	if addr := gen.metricsAddress(); addr != "" {
		srv, err = health.Serve(addr, d.health, d.m, d.log)
		if err != nil {
			gen.stop()
			return err
		}
		defer srv.Close()
	}
	childDone, err := d.startChild(ctx, gen)
	if err != nil {
		gen.stop()
		return err
	}
	beat := time.NewTicker(heartbeatEvery)
	defer beat.Stop()
	for {
		var why string
		select {
		case <-ctx.Done():
			gen.stop()
			if childDone != nil {
				// The supervisor saw ctx end too: the command is being
				// stopped (kill_signal, then SIGKILL after kill_timeout).
				return childExit(<-childDone)
			}
			return nil
		case r := <-childDone:
			gen.stop()
			if r.err == nil {
				d.log.Info("the command exited; stopping", "status", r.status.Code)
			}
			return childExit(r)
		case <-beat.C:
			d.health.Beat()
			continue
		case <-opts.Reload:
			why = "reload requested"
		case why = <-d.reloadCh:
			// An editor may write the file in several steps: wait until it
			// has been quiet for a moment before reading it.
			if !d.settle(ctx) {
				gen.stop()
				return nil
			}
		}
		d.log.Info("reloading configuration", "reason", why)
		d.health.Beat()
		// The running generation stops writing while the next one
		// renders: it would take the next one's files for tampering and
		// write its own back.
		gen.pause()
		next, err := d.startGeneration(ctx, gen.heldRequests(), true)
		d.health.Beat()
		if err != nil {
			gen.paused.Store(false)
			gen.kick()
			d.m.Reloads.With("error").Inc()
			d.log.Error("configuration not reloaded; the running one stays", "error", err)
			continue
		}
		d.m.Reloads.With("ok").Inc()
		gen.stop()
		gen = next
		// The new generation read every source afresh but the Vault
		// requests it holds over: their marks are its own now; what was
		// stale otherwise is either fresh or a failing output.
		d.health.HandOver(gen.id, gen.holdsOver)
		d.closeRetiredVault()
	}
}

// idleTrimAfter is how long after its last render pass the daemon returns
// free heap and drops its executable's pages (memtrim): an idle sidecar
// holding 100 secrets goes from about 24 MiB resident to about 11
// (bench/idle.sh).
const idleTrimAfter = 10 * time.Second

// trimMemory gives memory back while the daemon is idle.
func (d *daemon) trimMemory() {
	if d.opts.IdleTrim < 0 {
		return
	}
	before, _ := memtrim.Resident()
	debug.FreeOSMemory() // the heap a pass grew is returned too
	if err := memtrim.Executable(); err != nil {
		d.log.Debug("could not give the executable's pages back while idle", "error", err)
		return
	}
	after, _ := memtrim.Resident()
	d.log.Debug("idle: gave memory back", "rss_kib_before", before.RSS, "rss_kib_after", after.RSS)
	if d.opts.Trimmed != nil {
		d.opts.Trimmed(before, after)
	}
}

// fileSettle is how long a changed config or template must stay unchanged
// before it is read.
const fileSettle = 300 * time.Millisecond

// settle waits until no file change has been reported for fileSettle.
func (d *daemon) settle(ctx context.Context) bool {
	t := time.NewTimer(fileSettle)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-d.reloadCh:
			t.Reset(fileSettle)
		case <-t.C:
			return true
		}
	}
}

// heartbeatEvery is how often the daemon's main loop proves it is alive.
const heartbeatEvery = 5 * time.Second

type daemon struct {
	opts     DaemonOptions
	log      *slog.Logger
	m        *health.Metrics
	reloadCh chan string
	// health is what /readyz and /livez answer: the main loop's heartbeat,
	// failing outputs, secrets kept at their last good value.
	health *health.State
	// generations counts the generations started (each one's id).
	generations uint64

	// child is the supervised command, when there is one.
	child *childState
	// reaper starts the broker's own children and reaps orphans when the
	// broker is PID 1 (nil otherwise).
	reaper *supervisor.Reaper
	// idle fires idleTrimAfter after the last render pass and gives the
	// executable's pages back to the kernel (memtrim).
	idle *time.Timer

	// The Vault client outlives config reloads while the vault section is
	// unchanged: the broker stays logged in (an AppRole secret_id file
	// removed after the first login is not needed again).
	vault        *vault.Client
	vaultKey     string
	retiredVault *vault.Client
	// nameKey is every generation's Broker.nameKey, so a computed path
	// keeps its name in logs and metrics across reloads.
	nameKey [32]byte
}

// vaultConfigKey names what a Vault login depends on: while it stays the
// same across a reload, the daemon keeps its client (and login). It
// includes whom the credential files name, so that credentials changed in
// place (another role_id in the same file) log in afresh at the reload.
func vaultConfigKey(b *Broker) string {
	c := b.cfg
	principal, err := b.vaultAuth().Principal()
	if err != nil {
		principal = "unreadable: " + err.Error()
	}
	if c.Vault == nil {
		return "(env)|" + principal
	}
	v := *c.Vault
	auth := config.Auth{}
	if v.Auth != nil {
		auth = *v.Auth
	}
	v.Auth = nil
	return fmt.Sprintf("%s|%+v|%+v|%s", c.Dir, v, auth, principal)
}

// shareVault lets b use the daemon's client when the vault config matches.
func (d *daemon) shareVault(b *Broker) {
	key := vaultConfigKey(b)
	if d.vault != nil && d.vaultKey == key {
		b.vault, b.sharedVault = d.vault, true
	}
}

// adoptVault makes b's own client the daemon's; the one it replaces is
// closed once the old generation has stopped.
func (d *daemon) adoptVault(b *Broker) {
	if b.vault == nil || b.sharedVault {
		return
	}
	if d.vault != nil {
		d.retiredVault = d.vault
	}
	d.vault, d.vaultKey, b.sharedVault = b.vault, vaultConfigKey(b), true
}

func (d *daemon) closeRetiredVault() {
	if d.retiredVault != nil {
		d.retiredVault.Close()
		d.retiredVault = nil
	}
}

func (d *daemon) closeVault() {
	d.closeRetiredVault()
	if d.vault != nil {
		d.vault.Close()
	}
}

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
	b        *Broker
	prepared []Prepared
	names    []string
	calls    []templates.VaultCall
	requests *requestIndex
	dir      *outdir.Dir

	// fromCache is set when the generation started with Vault unreachable
	// and rendered its Vault values from the restart cache: nothing of
	// Vault's is kept fresh until Vault answers, and then a reload fetches
	// everything afresh (waitForVault).
	fromCache bool

	mu  sync.Mutex
	res *Resolved
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
	b := New(cfg)
	b.nameKey = d.nameKey
	b.SetLogger(d.log)
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
	var dir *outdir.Dir
	if len(prepared) > 0 {
		perms, err := cfg.DirPerms()
		if err != nil {
			b.Close()
			return nil, err
		}
		dir, err = outdir.Open(cfg.Resolve(cfg.OutputRoot), perms)
		if err != nil {
			b.Close()
			return nil, err
		}
	}
	names, calls := Needs(prepared)
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
	ctx, cancel := context.WithCancel(parent)
	d.generations++
	g := &generation{id: d.generations, started: started, heldOver: have, d: d, cfg: cfg, b: b, prepared: prepared, names: names, calls: calls, requests: b.indexRequests(names, calls), dir: dir, trigger: make(chan struct{}, 1), cancel: cancel,
		dirty: map[int]bool{}, allDirty: true, usersOf: outputUsers(prepared), failed: map[string]bool{}, byPath: map[string]int{}}
	for i, p := range prepared {
		g.byPath[p.Output.Path] = i
	}
	// Expired data keys are zeroed on a timer; a reload starts a new
	// broker with an empty cache, and stopping this one purges it.
	g.wg.Add(1)
	go func() { defer g.wg.Done(); b.cache.RunSweeper(ctx) }()
	// fetchUntil logs in first; a start or reload that cannot reach Vault
	// (no result at all) fails before writing anything, so it changes no
	// file.
	// At the first start, a config with a restart cache may render KV values
	// from it while Vault cannot be reached (cache.max_stale).
	res, err := b.fetchUntil(ctx, names, calls, have, d.opts.Timeout, !reload && have == nil && cfg.Cache != nil)
	if res == nil && err != nil {
		g.stop()
		return nil, err
	}
	g.fromCache = b.vault == nil && len(g.requests.refs) > 0
	if g.fromCache {
		for _, r := range g.requests.refs {
			d.health.SetStale(g.id, "vault:"+b.shownRequest(r), fail.Mark(fail.Unavailable, errors.New("rendered from the restart cache")))
		}
	}
	// Templates with computed Vault paths: find and fetch what they read;
	// startWatchers keeps those requests fresh like the literal ones.
	g.res = res
	if !g.fromCache {
		found, derr := b.resolveDynamic(ctx, prepared, res)
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

func (g *generation) metricsAddress() string {
	if g.cfg.Refresh == nil {
		return ""
	}
	return g.cfg.Refresh.MetricsAddress
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
	refs := g.requests.refs
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
	return g.watchFiles(ctx)
}

// keep starts the watcher of one Vault request, from initial when it is
// already held.
func (g *generation) keep(ctx context.Context, vc *vault.Client, r vault.Ref, initial *vault.Secret) {
	opts := vault.KeepOptions{StaticInterval: g.refresh().StaticInterval, Initial: initial, RetryPermanent: true, CertRenewal: g.refresh().CertificateRenewal}
	g.d.m.SetExpiry(g.b.shownRequest(r), initial)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := vc.Keep(ctx, r, opts, func(ev vault.Event) { g.onVault(ctx, r, ev) })
		if err != nil && ctx.Err() == nil {
			g.d.log.Error("stopped refreshing a Vault secret", "path", g.b.shownRequest(r), "error", err)
		}
	}()
}

// discover finds what the templates with computed paths among todo now
// read that the generation does not hold (a new key in a listed folder, a
// path built from a value that changed), fetches it into res, and keeps it
// fresh from then on, as the paths found at start are.
func (g *generation) discover(ctx context.Context, todo []Prepared, res *Resolved) {
	if g.fromCache || !slices.ContainsFunc(todo, func(p Prepared) bool { return p.Template != nil && p.Template.Dynamic }) {
		return
	}
	found, err := g.b.resolveDynamic(ctx, todo, res)
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

// adopt records the calls resolveDynamic found for outputs of todo (by
// index): which outputs use them, their responses in g.res, and the
// generation's request index; it returns the requests that are new. g.mu
// must be held.
func (g *generation) adopt(todo []Prepared, found map[int][]templates.VaultCall, res *Resolved) []vault.Ref {
	if len(found) == 0 {
		return nil
	}
	known := map[string]bool{}
	for _, c := range g.calls {
		known[c.Key()] = true
	}
	for i, cs := range found {
		out := g.byPath[todo[i].Output.Path]
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
	g.requests = g.b.indexRequests(g.names, g.calls)
	var added []vault.Ref
	for _, r := range g.requests.refs {
		key := r.RequestKey()
		if before.users[key] != nil {
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
	key, shown := r.RequestKey(), g.b.shownRequest(r)
	if ev.Secret != nil && g.cfg.Cache != nil {
		g.b.remember(ctx, map[string]*vault.Secret{key: ev.Secret})
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
		err := g.b.apply(g.res, g.requests, key, ev.Secret)
		for i := range g.outputsOf(key) {
			g.dirty[i] = true
		}
		g.mu.Unlock()
		if err != nil {
			g.d.log.Warn("a refreshed Vault secret lacks a field an output needs", "path", shown, "error", err)
		}
		g.kick()
	}
}

// watchFiles watches the directories of envelope and plain-file sources,
// template files and the config (directories, so atomic replacements are
// seen).
func (g *generation) watchFiles(ctx context.Context) error {
	sources := map[string][]string{} // path -> secret names
	for _, n := range g.names {
		d, _ := g.b.lookup(n)
		if d.Ref.Scheme == "envelope" || d.Ref.Scheme == "file" {
			p := filepath.Clean(g.cfg.Resolve(d.Ref.Path))
			sources[p] = append(sources[p], n)
		}
	}
	reloadOn := map[string]bool{}
	for _, p := range g.prepared {
		if p.Output.Template != "" {
			reloadOn[filepath.Clean(g.cfg.Resolve(p.Output.Template))] = true
		}
	}
	if g.d.opts.Config.Path != "" {
		if abs, err := filepath.Abs(g.d.opts.Config.Path); err == nil {
			reloadOn[abs] = true
		}
	}
	// Outputs: a file someone deletes or changes is written back on the
	// next pass (logged and counted as a restore).
	outputs := map[string]int{} // path -> output index; -1 for a directory
	outputDirs := map[string]bool{}
	inDir := map[string][]int{} // directory -> the outputs in it
	root := filepath.Clean(g.cfg.Resolve(g.cfg.OutputRoot))
	for i, p := range g.prepared {
		abs := filepath.Join(root, filepath.Clean(p.Output.Path))
		outputs[abs] = i
		inDir[filepath.Dir(abs)] = append(inDir[filepath.Dir(abs)], i)
		for d := filepath.Dir(abs); strings.HasPrefix(d, root); d = filepath.Dir(d) {
			outputs[d] = -1 // a removed parent directory
			outputDirs[d] = true
			if d == root {
				break
			}
		}
	}
	if len(sources) == 0 && len(reloadOn) == 0 && len(outputs) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("cannot watch files: %w", err)
	}
	dirs := map[string]bool{}
	for p := range sources {
		dirs[filepath.Dir(p)] = true
	}
	for p := range reloadOn {
		dirs[filepath.Dir(p)] = true
	}
	for dir := range dirs {
		if err := w.Add(dir); err != nil {
			w.Close()
			return fmt.Errorf("cannot watch %s: %w", dir, err)
		}
	}
	// Output directories may not exist until an output is written, and may
	// be removed and created again: (re)added whenever outputs change.
	watchOutputs := func() {
		for d := range outputDirs {
			w.Add(d)
		}
	}
	watchOutputs()
	// A source, template or config changed after the generation began
	// reading them but before the watches above existed: no event will
	// come for it, so its modification time tells.
	pending := map[string]bool{}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	now := time.Now()
	changedSinceStart := func(p string) bool {
		// A modification time in the future (a file unpacked with one,
		// clock skew) is no sign of a change: it would reload forever.
		info, err := os.Stat(p)
		return err == nil && info.ModTime().After(g.started) && !info.ModTime().After(now)
	}
	for p := range reloadOn {
		if changedSinceStart(p) {
			select {
			case g.d.reloadCh <- "changed while starting: " + p:
			default:
			}
		}
	}
	for p := range sources {
		if changedSinceStart(p) {
			pending[p] = true
			settle.Reset(fileSettle)
		}
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer w.Close()
		// Changed sources are re-read once they have been quiet for
		// fileSettle, so a file written in several steps is read whole.
		defer settle.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-w.Errors:
				g.d.log.Warn("file watcher", "error", err)
			case <-settle.C:
				for p := range pending {
					g.refetchLocal(ctx, p, sources[p])
				}
				clear(pending)
			case ev := <-w.Events:
				if ev.Op == fsnotify.Chmod {
					continue
				}
				p := filepath.Clean(ev.Name)
				if reloadOn[p] {
					select {
					case g.d.reloadCh <- "changed: " + p:
					default:
					}
					continue
				}
				if _, ok := sources[p]; ok {
					pending[p] = true
					settle.Reset(fileSettle)
				}
				// An output changed or removed (our own writes included:
				// rendering it again finds it unchanged), or a directory
				// of outputs: render what may have been touched.
				i, isOutput := outputs[p]
				_, inOutputDir := outputs[filepath.Dir(p)]
				if isOutput || inOutputDir && !strings.Contains(filepath.Base(p), ".tmp-") {
					watchOutputs()
					g.mu.Lock()
					switch {
					case isOutput && i >= 0:
						g.dirty[i] = true
					case isOutput: // a directory of outputs
						g.allDirty = true
					default: // another file beside outputs (a bundle's versions)
						for _, j := range inDir[filepath.Dir(p)] {
							g.dirty[j] = true
						}
					}
					g.mu.Unlock()
					g.kick()
				}
			}
		}
	}()
	return nil
}

func (g *generation) refetchLocal(ctx context.Context, path string, names []string) {
	delete(g.b.files, path) // only this goroutine reads files after start
	changed := false
	for _, n := range names {
		d, _ := g.b.lookup(n)
		v, err := g.b.fetchLocal(ctx, d)
		if err != nil {
			// A file being replaced can be briefly missing or half
			// written by a non-atomic editor, or emptied: every output
			// keeps the last good value, and /healthz says so.
			g.d.m.FetchErrors.With(d.Ref.Scheme).Inc()
			g.d.log.Warn("re-reading a secret failed; every output keeps its last good value", "secret", n, "error", err)
			g.d.health.SetStale(g.id, n, err)
			continue
		}
		g.d.health.SetStale(g.id, n, nil)
		g.d.m.Fetches.With(d.Ref.Scheme).Inc()
		g.mu.Lock()
		if g.res.Values[n] != v {
			g.res.Values[n] = v
			g.markDirty(n)
			changed = true
		}
		g.mu.Unlock()
	}
	if changed {
		g.kick()
	}
}

// renderLoop debounces triggers (wait.min after the last, at most wait.max
// after the first) and runs a render pass.
func (g *generation) renderLoop(ctx context.Context) {
	wait := g.refresh().Wait
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.trigger:
		}
		first := time.Now()
		for wait.Min > 0 {
			limit := wait.Min
			if wait.Max > 0 {
				limit = min(limit, time.Until(first.Add(wait.Max)))
			}
			if limit <= 0 {
				break
			}
			t := time.NewTimer(limit)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-g.trigger:
				t.Stop()
				continue
			case <-t.C:
			}
			break
		}
		g.pass(ctx, true)
		g.d.idle.Reset(g.d.opts.IdleTrim)
	}
}

// pass renders every output from the current values, writes the changed
// ones and, when notify is true, runs their notify actions.
func (g *generation) pass(ctx context.Context, notify bool) {
	g.passMu.Lock()
	defer g.passMu.Unlock()
	if g.paused.Load() {
		return
	}
	g.mu.Lock()
	res := g.res.clone()
	todo := g.prepared
	if !g.allDirty {
		todo = g.dirtyOutputs()
	}
	clear(g.dirty)
	g.allDirty = false
	g.mu.Unlock()
	g.discover(ctx, todo, res)
	rep := writeAll(g.dir, todo, res, false)
	m := g.d.m
	restored := map[string]bool{}
	if g.written == nil {
		g.written = map[string][32]byte{}
	}
	for _, r := range rep.Results {
		prev, seen := g.written[r.Path]
		if r.Err == nil {
			g.written[r.Path] = r.Sum
			delete(g.failed, r.Path)
		} else {
			g.failed[r.Path] = true
		}
		switch {
		case r.Err != nil:
			g.d.log.Error("output not written; its previous file is kept", "output", r.Path, "error", r.Err)
		case r.Changed && seen && prev == r.Sum:
			restored[r.Path] = true
			m.Restores.Inc()
			g.d.log.Warn("output was deleted or changed by someone else; restored", "output", r.Path)
		case r.Changed:
			m.Writes.Inc()
			g.d.log.Info("output written", "output", r.Path)
			if n := g.prepared[g.byPath[r.Path]].Output.Notify; notify && n != nil {
				nc := *n
				nc.PIDFile = g.cfg.Resolve(nc.PIDFile)
				if err := runNotify(ctx, &nc, g.d.reaper); err != nil {
					m.NotifyErrors.Inc()
					g.d.log.Error("notify failed", "output", r.Path, "error", err)
				} else {
					m.Notifications.Inc()
				}
			}
		}
	}
	if notify {
		g.d.tellChild(g, rep, restored)
	}
	failing := make([]string, 0, len(g.failed))
	for p := range g.failed {
		failing = append(failing, p)
	}
	slices.Sort(failing)
	if len(failing) > 0 {
		m.Renders.With("error").Inc()
	} else {
		m.Renders.With("ok").Inc()
		m.LastSuccess.SetToCurrentTime()
	}
	g.d.health.Rendered(failing)
	if g.d.opts.Rendered != nil {
		g.d.opts.Rendered(rep)
	}
}

// outputUsers maps each declared secret and template call key to the
// outputs that use it.
func outputUsers(ps []Prepared) map[string][]int {
	users := map[string][]int{}
	for i, p := range ps {
		for _, s := range p.Secrets {
			users[s] = append(users[s], i)
		}
		if p.Template != nil {
			for _, c := range p.Template.Vault {
				users[c.Key()] = append(users[c.Key()], i)
			}
		}
	}
	return users
}

// holdsOver reports whether the stale mark name (vault:REQUEST) is of a
// Vault request this generation took over from the previous one without
// reading it afresh.
func (g *generation) holdsOver(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.requests.refs {
		if "vault:"+g.b.shownRequest(r) == name {
			_, held := g.heldOver[r.RequestKey()]
			return held
		}
	}
	return false
}

// outputsOf are the indexes of the outputs that use the Vault request
// key, through a declared secret or a template call (g.mu held).
func (g *generation) outputsOf(key string) map[int]bool {
	out := map[int]bool{}
	u := g.requests.users[key]
	if u == nil {
		return out
	}
	for _, d := range u.decls {
		for _, i := range g.usersOf[d.Name] {
			out[i] = true
		}
	}
	for _, c := range u.calls {
		for _, i := range g.usersOf[c] {
			out[i] = true
		}
	}
	return out
}

// outputsUsing names the outputs that use the Vault request key, sorted
// (g.mu held).
func (g *generation) outputsUsing(key string) []string {
	var out []string
	for i := range g.outputsOf(key) {
		out = append(out, g.prepared[i].Output.Path)
	}
	slices.Sort(out)
	return out
}

// markDirty marks the outputs that use a secret name or call key (g.mu
// held).
func (g *generation) markDirty(nameOrCall string) {
	for _, i := range g.usersOf[nameOrCall] {
		g.dirty[i] = true
	}
}

// dirtyOutputs are the outputs to render in this pass, in order, with
// every member of a bundle that has a dirty member (bundles switch
// together) (g.mu held).
func (g *generation) dirtyOutputs() []Prepared {
	bundles := map[string]bool{}
	for i := range g.dirty {
		if b := g.prepared[i].Output.Bundle; b != "" {
			bundles[b] = true
		}
	}
	for path := range g.failed {
		i := g.byPath[path]
		g.dirty[i] = true
		if b := g.prepared[i].Output.Bundle; b != "" {
			bundles[b] = true
		}
	}
	var out []Prepared
	for i, p := range g.prepared {
		if g.dirty[i] || (p.Output.Bundle != "" && bundles[p.Output.Bundle]) {
			out = append(out, p)
		}
	}
	return out
}

// maxPIDFileLen bounds a pid file: a number and a newline.
const maxPIDFileLen = 64

// signalPIDFile sends sig to the process whose id the pid file holds, only
// when that process belongs to the file's owner: whoever can write the pid
// file (the app) can then make the broker signal no process it could not
// signal itself, even when the broker runs as root. The file is opened
// without following a symbolic link, and refused with more than one link,
// so that the app cannot lend itself another user's pid file; where the
// process's owner cannot be read (no /proc), only a pid file the broker's
// own user wrote is used.
func signalPIDFile(path string, sig syscall.Signal) error {
	f, info, err := openPIDFile(path)
	if err != nil {
		return err
	}
	data, err := readlimit.Opened(f, maxPIDFileLen, "pid_file "+path)
	f.Close()
	if err != nil {
		return fmt.Errorf("cannot read pid_file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("pid_file %s does not hold a process id", path)
	}
	if fileUID, _, ok := fileowner.Of(info); ok {
		procUID, known := processUID(pid)
		switch {
		case !known && fileUID != os.Geteuid():
			return fmt.Errorf("pid_file %s (owned by uid %d) names process %d, whose owner cannot be read here (no /proc, or it is a thread of another process): not signalled; then the broker signals only through a pid file its own user wrote", path, fileUID, pid)
		case known && procUID != fileUID:
			return fmt.Errorf("pid_file %s (owned by uid %d) names process %d of uid %d: not signalled; the broker signals only a process of the pid file's owner, so that whoever writes the file cannot direct its signals elsewhere", path, fileUID, pid, procUID)
		}
	}
	if err := signalProcess(pid, sig); err != nil {
		return fmt.Errorf("cannot signal process %d: %w", pid, err)
	}
	return nil
}

// runNotify signals the process in the pid file and/or runs the command
// (no shell; the broker's own credentials are not passed on).
func runNotify(ctx context.Context, n *config.Notify, reaper *supervisor.Reaper) error {
	var errs []error
	if n.Signal != "" {
		sig, _ := config.ParseSignal(n.Signal) // checked when the config loaded
		if err := signalPIDFile(n.PIDFile, sig); err != nil {
			errs = append(errs, err)
		}
	}
	if len(n.Command) > 0 {
		timeout := n.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, n.Command[0], n.Command[1:]...)
		cmd.Env = credenv.Strip(os.Environ())
		err := reaper.Start(cmd)
		if err == nil {
			err = cmd.Wait()
			reaper.Done(cmd.Process.Pid)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("notify command %s: %w", n.Command[0], err))
		}
	}
	return errors.Join(errs...)
}
