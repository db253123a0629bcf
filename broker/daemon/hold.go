package daemon

import (
	"time"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
)

// holds are the per-output waits (an output's own wait, consul-template's
// per-template wait): when each held output's inputs first and last
// changed since it was last written.
type holds struct {
	first, last map[int]time.Time
	timer       *time.Timer
}

// touch marks output i dirty and, when it has a wait of its own, notes
// the change's time (g.mu held).
func (g *generation) touch(i int) {
	g.dirty[i] = true
	if g.prepared[i].Output.Wait == nil {
		return
	}
	now := time.Now()
	if g.holds.first == nil {
		g.holds.first, g.holds.last = map[int]time.Time{}, map[int]time.Time{}
	}
	if _, ok := g.holds.first[i]; !ok {
		g.holds.first[i] = now
	}
	g.holds.last[i] = now
}

// due is when a held output may be written: Min after its last change,
// at most Max (default four times Min, as consul-template) after its
// first.
func due(w *config.Wait, first, last time.Time) time.Time {
	limit := w.Max
	if limit == 0 {
		limit = 4 * w.Min
	}
	t := last.Add(w.Min)
	if cap := first.Add(limit); cap.Before(t) {
		t = cap
	}
	return t
}

// release splits todo into the outputs to write now and the ones still
// held by their wait (all of a bundle when any member is held); the held
// ones stay dirty and a timer kicks a pass when the first is due (g.mu
// held).
func (g *generation) release(todo []broker.Prepared) []broker.Prepared {
	if len(g.holds.first) == 0 {
		return todo
	}
	now := time.Now()
	var next time.Time
	heldBundle := map[string]bool{}
	held := map[int]bool{}
	for i, p := range g.prepared {
		first, ok := g.holds.first[i]
		if !ok {
			continue
		}
		if t := due(p.Output.Wait, first, g.holds.last[i]); t.After(now) {
			held[i] = true
			if p.Output.Bundle != "" {
				heldBundle[p.Output.Bundle] = true
			}
			if next.IsZero() || t.Before(next) {
				next = t
			}
		}
	}
	out := todo[:0:0]
	for _, p := range todo {
		i := g.byPath[p.Name()]
		if held[i] || (p.Output.Bundle != "" && heldBundle[p.Output.Bundle]) {
			g.dirty[i] = true
			continue
		}
		delete(g.holds.first, i)
		delete(g.holds.last, i)
		out = append(out, p)
	}
	if !next.IsZero() {
		if g.holds.timer != nil {
			g.holds.timer.Stop()
		}
		g.holds.timer = time.AfterFunc(time.Until(next), g.kick)
	}
	return out
}
