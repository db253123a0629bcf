package vault

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/internal/backoff"
)

// Event is one delivery from Keep.
type Event struct {
	Secret *Secret
	// Renewed is true when the lease was extended and the data is the same
	// as the previous event's; false for a newly fetched secret.
	Renewed bool
	// Err is set when a fetch failed; Keep goes on trying with backoff while
	// the error is retryable and stops when it is not.
	Err error
	// RetryIn is the wait before the next attempt after Err (zero when
	// Keep gives up).
	RetryIn time.Duration
}

// KeepOptions tunes Keep.
type KeepOptions struct {
	// StaticInterval is how often a secret without a lease (KV) is read
	// again. Default 5 minutes, as Vault Agent's static_secret_render_interval.
	StaticInterval time.Duration
	// MinRefetch is the least time between two fetches of a leased secret,
	// so a failing renewal never turns into a credential-minting loop.
	// Default 1 s.
	MinRefetch time.Duration
	// RetryPermanent keeps retrying failures that are not retryable (a path
	// not found, permission denied) with backoff capped at 5 minutes,
	// instead of ending Keep: a sidecar outlives a secret briefly deleted or
	// a policy fixed later.
	RetryPermanent bool
	// Initial is a secret already fetched for ref: Keep starts by keeping it
	// instead of fetching again, so a broker that fetched everything at
	// start does not mint a second set of dynamic credentials.
	Initial *Secret
	// CertRenewal is the fraction of a certificate's validity after which
	// a PKI certificate without a lease is issued again (see
	// Secret.RenewCertAt); zero means DefaultCertRenewal.
	CertRenewal float64
}

// Keep fetches ref, hands it to deliver, and keeps it valid until ctx ends:
//
//   - a renewable lease is renewed at a random point between 1/3 and 5/6 of
//     its remaining time (renewUntilDone); when Vault stops extending it
//     (max TTL), a fresh secret is fetched at 85-95% of what is left;
//   - a lease that cannot be renewed is fetched again at 85-95% of its TTL
//     (consul-template's rule);
//   - a PKI certificate without a lease is issued again at its renewal
//     point (Secret.RenewCertAt);
//   - any other secret without a lease is read again every StaticInterval.
//
// Retryable failures back off as backoff.Default says (full jitter under a
// ceiling of 250 ms doubling to 1 minute); a permanent failure is delivered
// and ends Keep with that error.
func (c *Client) Keep(ctx context.Context, ref Ref, opts KeepOptions, deliver func(Event)) error {
	if opts.StaticInterval <= 0 {
		opts.StaticInterval = 5 * time.Minute
	}
	if opts.MinRefetch <= 0 {
		opts.MinRefetch = time.Second
	}
	var lastFetch time.Time
	for {
		if wait := opts.MinRefetch - time.Since(lastFetch); !lastFetch.IsZero() && wait > 0 {
			if !backoff.Sleep(ctx, wait) {
				return ctx.Err()
			}
		}
		var s *Secret
		if opts.Initial != nil {
			s, opts.Initial = opts.Initial, nil
			lastFetch = s.Lease.IssuedAt
		} else {
			var err error
			s, err = c.fetchWithRetry(ctx, ref, opts.RetryPermanent, deliver)
			if err != nil {
				return err
			}
			lastFetch = time.Now()
			deliver(Event{Secret: s})
		}
		switch {
		case s.Lease.ID != "" && s.Lease.Renewable:
			if err := c.renewUntilDone(ctx, s, deliver); err != nil {
				return err
			}
		case s.Lease.TTL > 0:
			if !backoff.Sleep(ctx, time.Until(s.Lease.refetchAt())) {
				return ctx.Err()
			}
		default:
			next := s.Lease.IssuedAt.Add(opts.StaticInterval)
			if at, ok := s.RenewCertAt(opts.CertRenewal); ok {
				next = at // a certificate is issued again near its renewal point, not every interval
			}
			if !backoff.Sleep(ctx, time.Until(next)) {
				return ctx.Err()
			}
		}
	}
}

func (c *Client) fetchWithRetry(ctx context.Context, ref Ref, retryPermanent bool, deliver func(Event)) (*Secret, error) {
	for attempt := 0; ; attempt++ {
		s, err := c.Read(ctx, ref)
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		policy := backoff.Default()
		if e, ok := err.(*Error); ok && !e.Retryable() {
			if !retryPermanent {
				deliver(Event{Err: err})
				return nil, err
			}
			policy.Max = 5 * time.Minute
		}
		wait := policy.Delay(attempt)
		deliver(Event{Err: err, RetryIn: wait})
		if !backoff.Sleep(ctx, wait) {
			return nil, ctx.Err()
		}
	}
}

// refetchAt is when a lease that will not be extended is replaced by a
// fresh secret: a random point in 85-95% of its TTL (consul-template's
// rule), so that a fleet does not fetch in lockstep.
func (l Lease) refetchAt() time.Time {
	return l.IssuedAt.Add(time.Duration(float64(l.TTL) * (0.85 + rand.Float64()*0.10)))
}

// Lease renewal points: a lease is renewed at a point drawn uniformly from
// [renewFrom, renewTo] of its remaining time. The window is wide so that a
// fleet that started together spreads its renewals out within one cycle
// (Vault's LifetimeWatcher renews at 2/3 plus 3-7% and at once on start,
// which keeps a fleet in lockstep: bench/fleet.sh).
const (
	renewFrom = 1.0 / 3.0
	renewTo   = 5.0 / 6.0
)

// renewDelay is the wait before renewing a lease with remaining time left.
func renewDelay(remaining time.Duration) time.Duration {
	f := renewFrom + rand.Float64()*(renewTo-renewFrom)
	return time.Duration(float64(remaining) * f)
}

// renewUntilDone renews s's lease (sys/leases/renew, asking for its original
// TTL again) at a jittered point of its remaining time, delivering each
// renewal, and returns nil when a fresh secret must be fetched: Vault
// stopped extending the lease (max TTL ahead: the fetch happens at 85-95% of
// what is left), Vault no longer knows it, or retries ran out of time. It
// returns ctx's error when ctx ends.
func (c *Client) renewUntilDone(ctx context.Context, s *Secret, deliver func(Event)) error {
	increment := s.Lease.TTL
	for {
		expires := s.Lease.IssuedAt.Add(s.Lease.TTL)
		if !backoff.Sleep(ctx, renewDelay(time.Until(expires))) {
			return ctx.Err()
		}
		var raw *api.Secret
		for attempt := 0; ; attempt++ {
			var err error
			raw, err = c.api.Sys().RenewWithContext(ctx, s.Lease.ID, int(increment.Seconds()))
			if err == nil && raw != nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e := classify("renew", s.Path, s.Ref.String(), err)
			wait := backoff.Default().Delay(attempt)
			if !e.Retryable() || time.Now().Add(wait).After(s.Lease.IssuedAt.Add(s.Lease.TTL*9/10)) {
				return nil // fetch a fresh secret
			}
			deliver(Event{Err: s.Ref.hide(e), RetryIn: wait})
			if !backoff.Sleep(ctx, wait) {
				return ctx.Err()
			}
		}
		renewed := *s
		renewed.Lease = Lease{ID: raw.LeaseID, TTL: time.Duration(raw.LeaseDuration) * time.Second, Renewable: raw.Renewable, IssuedAt: time.Now()}
		if renewed.Lease.ID == "" {
			renewed.Lease.ID = s.Lease.ID
		}
		s = &renewed
		deliver(Event{Secret: s, Renewed: true})
		if !s.Lease.Renewable || s.Lease.TTL < increment {
			// Vault capped the lease (max TTL): fetch a fresh one before
			// it ends, as for a lease that cannot be renewed.
			if !backoff.Sleep(ctx, time.Until(s.Lease.refetchAt())) {
				return ctx.Err()
			}
			return nil
		}
	}
}
