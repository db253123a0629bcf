package daemon

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/supervisor"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// childState is the daemon's supervised command: the environment it was
// last started with (by hash) and where changes go.
type childState struct {
	// changes holds at most one pending change: the newest, keeping a
	// pending new environment when a file change follows it.
	changes chan supervisor.Change
	envSum  [32]byte
	never   bool
}

// execCommand is the command to supervise: --exec's, else the config's
// exec.command; nil when there is none.
func (d *daemon) execCommand(cfg *config.Config) []string {
	if len(d.opts.Exec.Command) > 0 {
		return d.opts.Exec.Command
	}
	if cfg.Exec != nil && len(cfg.Exec.Command) > 0 {
		return cfg.Exec.Command
	}
	return nil
}

// childResult is how the supervised command ended: its status, or why it
// could not be started.
type childResult struct {
	status supervisor.Status
	err    error
}

// childExit is the daemon's result for the command's end: the broker exits
// with its status.
func childExit(r childResult) error {
	if r.err != nil {
		return fail.Mark(fail.Usage, r.err) // as exec: the command cannot be started
	}
	if r.status.Code == 0 {
		return nil
	}
	return &broker.ExitError{Code: r.status.Code}
}

// startChild starts the supervised command with the first generation's
// secrets in its environment; it returns where its end is reported (nil
// when there is no command).
func (d *daemon) startChild(ctx context.Context, g *generation) (<-chan childResult, error) {
	command := d.execCommand(g.cfg)
	if command == nil {
		return nil, nil
	}
	env, sum, err := g.childEnv()
	if err != nil {
		return nil, err
	}
	ec := config.Exec{}
	if g.cfg.Exec != nil {
		ec = *g.cfg.Exec
	}
	cfg := supervisor.Config{
		Command: command, Stdin: d.opts.Exec.Stdin, Stdout: d.opts.Exec.Stdout, Stderr: d.opts.Exec.Stderr,
		KillTimeout: ec.KillTimeout, Splay: ec.Splay, RestartOnExit: ec.OnChildExit == "restart",
		Forward: supervisor.Signals(false), Log: d.log, Reaper: d.reaper,
	}
	if ec.ReloadSignal != "" {
		cfg.ReloadSignal, _ = config.ParseSignal(ec.ReloadSignal)
	}
	if ec.KillSignal != "" {
		cfg.KillSignal, _ = config.ParseSignal(ec.KillSignal)
	}
	child := &childState{changes: make(chan supervisor.Change, 1), envSum: sum, never: ec.RestartOnSecretChanges == "never"}
	d.childMu.Lock()
	d.child = child
	d.childMu.Unlock()
	done := make(chan childResult, 1)
	go func() {
		st, err := supervisor.Run(ctx, cfg, env, child.changes)
		done <- childResult{st, err}
	}()
	return done, nil
}

// childEnv is the command's environment from the generation's current
// values, and its hash; an error names the secrets it lacks.
func (g *generation) childEnv() ([]string, [32]byte, error) {
	envMap, err := g.b.ExecEnv()
	if err != nil {
		return nil, [32]byte{}, err
	}
	g.mu.Lock()
	var missing []string
	for _, n := range envMap {
		if _, ok := g.res.Values[n]; !ok {
			missing = append(missing, n)
		}
	}
	vars, values := broker.EnvValues(envMap, g.res.Values)
	g.mu.Unlock()
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, [32]byte{}, fmt.Errorf("not starting the command: secret(s) %s unavailable (see the warnings above; --timeout bounds the retries)", strings.Join(missing, ", "))
	}
	env := g.b.ChildEnv(g.d.opts.Exec, vars, values)
	h := sha256.New()
	for _, kv := range env {
		h.Write([]byte(kv))
		h.Write([]byte{0})
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return env, sum, nil
}

// tellChild passes a render pass's outcome to the command: a new
// environment restarts it; a changed file (one without its own notify)
// restarts or signals it; nothing else does.
func (d *daemon) tellChild(g *generation, rep broker.Report, restored map[string]bool) {
	d.childMu.Lock()
	defer d.childMu.Unlock()
	c := d.child
	if c == nil || c.never {
		return
	}
	var change *supervisor.Change
	env, sum, err := g.childEnv()
	switch {
	case err != nil:
		d.log.Warn("the command's secrets are incomplete; it keeps running with the ones it has", "error", err)
	case sum != c.envSum:
		c.envSum = sum
		change = &supervisor.Change{Env: env}
	}
	if change == nil {
		for _, r := range rep.Results {
			if r.Err == nil && r.Changed && !restored[r.Path] && g.prepared[g.byPath[r.Path]].Output.Notify == nil {
				change = &supervisor.Change{}
				break
			}
		}
	}
	if change == nil {
		return
	}
	for {
		select {
		case c.changes <- *change:
			return
		default:
		}
		select {
		case old := <-c.changes:
			if change.Env == nil {
				change.Env = old.Env
			}
		default:
		}
	}
}

// sortedValues lists a map's values in order, each once.
func sortedValues(m map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range m {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}
