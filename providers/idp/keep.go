package idp

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/backoff"
)

// Event is what Keep reports: a new token, or a failed refresh with the
// wait before the next try; Expired is set once when the held token's
// expiry passes with no new token.
type Event struct {
	Token   *Token
	Err     error
	RetryIn time.Duration
	Expired bool
}

// RefreshAt is when t is replaced: a random point between 2/3 and 5/6 of
// its lifetime, or, for the first token a process holds (first), between
// 1/3 and 5/6. Brokers started together (a rollout) get their first tokens
// together; the wider first window spreads their requests over half a
// lifetime, as Vault leases are spread, and the later windows keep them
// apart.
func RefreshAt(t *Token, first bool) time.Time {
	life := t.Lifetime()
	from := life * 2 / 3
	if first {
		from = life / 3
	}
	return t.IssuedAt.Add(from + time.Duration(rand.Int64N(int64(life*5/6-from)+1)))
}

// MinRefreshInterval is the least time between two token requests of one
// entry that both succeeded: an IdP giving tokens of a second or less
// cannot make the broker ask in a loop.
const MinRefreshInterval = time.Second

// nextRefresh is RefreshAt, not before MinRefreshInterval after the token
// was asked for, and, for a first token that is already past its draw (one
// from the restart cache), a point drawn afresh between now and 5/6 of its
// lifetime, so that a restarted fleet does not ask at once.
func nextRefresh(t *Token, first bool, now time.Time) time.Time {
	at := RefreshAt(t, first)
	if last := t.IssuedAt.Add(t.Lifetime() * 5 / 6); first && !at.After(now) && last.After(now) {
		at = now.Add(time.Duration(rand.Int64N(int64(last.Sub(now)) + 1)))
	}
	return maxTime(at, t.IssuedAt.Add(MinRefreshInterval))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Keep keeps a token fresh until ctx ends: it waits until RefreshAt of the
// token held (initial, the first; with none it fetches at once), asks fetch for a new
// one, and on failure tries again as backoff.Default says, never sooner
// than the IdP's Retry-After. Failures never stop it (credentials fixed in
// their source are picked up by fetch).
func Keep(ctx context.Context, fetch func(context.Context) (*Token, error), initial *Token, on func(Event)) {
	held, first := initial, true
	for {
		if held != nil && !backoff.Sleep(ctx, time.Until(nextRefresh(held, first, time.Now()))) {
			return
		}
		if held != nil {
			first = false
		}
		expiredSaid := false
		for attempt := 0; ; attempt++ {
			t, err := fetch(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				held = t
				on(Event{Token: t})
				break
			}
			wait := max(backoff.Default().Delay(attempt), RetryAfterOf(err))
			if held != nil && !expiredSaid {
				if until := time.Until(held.Expiry); until <= 0 {
					expiredSaid = true
					on(Event{Err: err, RetryIn: wait, Expired: true})
					if !backoff.Sleep(ctx, wait) {
						return
					}
					continue
				} else if until < wait {
					// Say so when it expires, then go on waiting.
					on(Event{Err: err, RetryIn: wait})
					if !backoff.Sleep(ctx, until) {
						return
					}
					expiredSaid = true
					on(Event{Err: err, RetryIn: wait - until, Expired: true})
					if !backoff.Sleep(ctx, wait-until) {
						return
					}
					continue
				}
			}
			on(Event{Err: err, RetryIn: wait})
			if !backoff.Sleep(ctx, wait) {
				return
			}
		}
	}
}
