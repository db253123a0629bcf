package daemon

import (
	"context"
	"slices"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/notify"

	"github.com/secrets-broker/secrets-broker/broker"
)

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
// ones and, when tell is true, runs their notify actions.
func (g *generation) pass(ctx context.Context, tell bool) {
	g.passMu.Lock()
	defer g.passMu.Unlock()
	if g.paused.Load() {
		return
	}
	g.mu.Lock()
	res := g.res.Clone()
	todo := g.prepared
	if !g.allDirty {
		todo = g.dirtyOutputs()
	}
	clear(g.dirty)
	if !g.allDirty {
		todo = g.release(todo)
	} else {
		clear(g.holds.first)
		clear(g.holds.last)
	}
	g.allDirty = false
	g.mu.Unlock()
	g.discover(ctx, todo, res)
	rep := broker.WriteAll(g.dir, todo, res, false)
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
			if n := g.prepared[g.byPath[r.Path]].Output.Notify; tell && n != nil {
				nc := *n
				nc.PIDFile = g.cfg.Resolve(nc.PIDFile)
				if err := notify.Run(ctx, &nc, g.d.reaper); err != nil {
					m.NotifyErrors.Inc()
					g.d.log.Error("notify failed", "output", r.Path, "error", err)
				} else {
					m.Notifications.Inc()
				}
			}
		}
	}
	if tell {
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
func outputUsers(ps []broker.Prepared) map[string][]int {
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
	for _, r := range g.requests.Refs() {
		if "vault:"+g.b.ShownRequest(r) == name {
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
	names, calls, _ := g.requests.Users(key)
	for _, n := range names {
		for _, i := range g.usersOf[n] {
			out[i] = true
		}
	}
	for _, c := range calls {
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
		out = append(out, g.prepared[i].Name())
	}
	slices.Sort(out)
	return out
}

// markDirty marks the outputs that use a secret name or call key (g.mu
// held).
func (g *generation) markDirty(nameOrCall string) {
	for _, i := range g.usersOf[nameOrCall] {
		g.touch(i)
	}
}

// dirtyOutputs are the outputs to render in this pass, in order, with
// every member of a bundle that has a dirty member (bundles switch
// together) (g.mu held).
func (g *generation) dirtyOutputs() []broker.Prepared {
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
	var out []broker.Prepared
	for i, p := range g.prepared {
		if g.dirty[i] || (p.Output.Bundle != "" && bundles[p.Output.Bundle]) {
			out = append(out, p)
		}
	}
	return out
}
