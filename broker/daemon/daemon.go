// Package daemon keeps rendered secrets fresh: one generation per loaded
// config, Vault watchers and file watchers, the debounced render loop,
// notify actions and the supervised command, config reloads that carry held
// secrets over.
package daemon

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/health"
	"github.com/secrets-broker/secrets-broker/broker/supervisor"
	"github.com/secrets-broker/secrets-broker/internal/memtrim"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// Options configure Run.
type Options struct {
	// newWatcher makes the inotify watcher (nil: fsnotify's); tests make
	// it fail as a kernel out of inotify instances does.
	newWatcher func() (dirWatcher, error)
	// Config is loaded at start and again on Reload or when its file
	// changes.
	Config config.Source
	// Timeout bounds retrying an unreachable source at start and reload.
	Timeout time.Duration
	Logger  *slog.Logger
	// Reload asks for the config to be read again (SIGHUP).
	Reload <-chan struct{}
	// Rendered, when set, is called after every render pass.
	Rendered func(broker.Report)
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
	Exec broker.ExecOptions
}

// Run renders every output, then keeps them fresh until ctx ends:
// Vault leases are renewed and rotated secrets re-fetched before they
// expire (vault.Client.Keep, one watcher per distinct request), KV secrets
// are re-read every refresh.static_interval, envelope and plain files and
// templates are watched (fsnotify). Changes are debounced
// (refresh.wait.min/max), only changed files are written, and only their
// notify actions run. The config is reloaded on Reload or when its file
// changes; a config that does not load leaves the running one in place, and
// secrets already held are carried over (no second set of dynamic
// credentials).
func Run(ctx context.Context, opts Options) error {
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
	if l := gen.listener(); l.Addr != "" {
		srv, err = health.Serve(l, d.health, d.m, d.log)
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
	opts     Options
	log      *slog.Logger
	m        *health.Metrics
	reloadCh chan string
	// health is what /readyz and /livez answer: the main loop's heartbeat,
	// failing outputs, secrets kept at their last good value.
	health *health.State
	// generations counts the generations started (each one's id).
	generations uint64

	// child is the supervised command, when there is one. childMu guards
	// it and its envSum: a pass (a token refreshed at once, say) may tell
	// the child while Run is still starting it.
	childMu sync.Mutex
	child   *childState
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
	// nameKey is every generation's broker's name key (SetNameKey), so
	// that a computed path keeps its name in logs and metrics across
	// reloads.
	nameKey [32]byte
}

// shareVault lets b use the daemon's client when the vault config matches.
func (d *daemon) shareVault(b *broker.Broker) {
	if d.vault != nil && d.vaultKey == b.VaultKey() {
		b.UseVault(d.vault)
	}
}

// adoptVault makes b's own client the daemon's; the one it replaces is
// closed once the old generation has stopped.
func (d *daemon) adoptVault(b *broker.Broker) {
	c := b.LendVault()
	if c == nil {
		return
	}
	if d.vault != nil {
		d.retiredVault = d.vault
	}
	d.vault, d.vaultKey = c, b.VaultKey()
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
