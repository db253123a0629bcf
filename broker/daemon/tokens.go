package daemon

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/secrets-broker/secrets-broker/providers/idp"
)

// keepTokens starts one idp.Keep per token entry the generation uses: each
// token is replaced at a random point between 2/3 and 5/6 of its lifetime
// with credentials as the generation holds them then.
func (g *generation) keepTokens(ctx context.Context) {
	for _, name := range g.b.TokensOf(g.names) {
		g.mu.Lock()
		initial := g.res.Tokens[name]
		g.mu.Unlock()
		if initial != nil {
			g.d.m.SetTokenExpiry(name, initial.Expiry)
		}
		fetch := func(ctx context.Context) (*idp.Token, error) {
			g.mu.Lock()
			values := maps.Clone(g.res.Values)
			g.mu.Unlock()
			defer clear(values)
			return g.b.FetchToken(ctx, name, values)
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			idp.Keep(ctx, fetch, initial, func(ev idp.Event) { g.onToken(name, ev) })
		}()
	}
}

func (g *generation) onToken(name string, ev idp.Event) {
	mark := "token:" + name
	switch {
	case ev.Token != nil:
		g.d.health.SetStale(g.id, mark, nil)
		g.d.m.Fetches.With("token").Inc()
		g.d.m.SetTokenExpiry(name, ev.Token.Expiry)
		g.mu.Lock()
		g.b.ApplyToken(g.res, name, ev.Token)
		for _, n := range g.b.TokenDecls(name) {
			g.markDirty(n)
		}
		g.mu.Unlock()
		if ev.Token.LifetimeGuessed {
			g.d.log.Warn("the IdP gave the token no lifetime (expires_in); it is replaced as if it lasted 5 minutes", "token", name)
		}
		g.kick()
	case ev.Expired:
		// The outputs keep the expired token (removing a file an app
		// reads breaks it harder); /readyz and the log say so until a
		// new token comes.
		g.mu.Lock()
		outputs := g.outputsOfToken(name)
		g.mu.Unlock()
		g.d.health.SetStale(g.id, mark, ev.Err, outputs...)
		g.d.m.FetchErrors.With("token").Inc()
		g.d.log.Error("an access token expired and no new one could be got; its outputs hold an expired token", "token", name, "outputs", outputs, "retry_in", ev.RetryIn.Round(time.Millisecond).String(), "error", ev.Err)
	default:
		g.d.m.FetchErrors.With("token").Inc()
		g.mu.Lock()
		held := g.res.Tokens[name] != nil
		g.mu.Unlock()
		msg := "getting an access token failed; its outputs wait for one"
		if held {
			msg = "getting a new access token failed; the current one is kept until it expires"
		}
		g.d.log.Warn(msg, "token", name, "retry_in", ev.RetryIn.Round(time.Millisecond).String(), "error", ev.Err)
	}
}

// outputsOfToken names the outputs that use entry name's token, sorted
// (g.mu held).
func (g *generation) outputsOfToken(name string) []string {
	var out []string
	for _, n := range g.b.TokenDecls(name) {
		for _, i := range g.usersOf[n] {
			if p := g.prepared[i].Name(); !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}
