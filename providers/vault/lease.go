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
//   - a renewable lease is renewed by Vault's LifetimeWatcher (at about 2/3
//     of its TTL, with jitter); when Vault stops extending it (max TTL), a
//     fresh secret is fetched before the old one expires;
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
			frac := 0.85 + rand.Float64()*0.10
			if !backoff.Sleep(ctx, time.Until(s.Lease.IssuedAt.Add(time.Duration(float64(s.Lease.TTL)*frac)))) {
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

// renewUntilDone runs the LifetimeWatcher on s's lease and returns when a
// fresh secret must be fetched (nil) or ctx ends.
func (c *Client) renewUntilDone(ctx context.Context, s *Secret, deliver func(Event)) error {
	w, err := c.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s.Raw, Increment: int(s.Lease.TTL.Seconds())})
	if err != nil {
		return err
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-w.RenewCh():
			if r == nil || r.Secret == nil {
				continue
			}
			renewed := *s
			renewed.Lease = Lease{ID: r.Secret.LeaseID, TTL: time.Duration(r.Secret.LeaseDuration) * time.Second, Renewable: r.Secret.Renewable, IssuedAt: time.Now()}
			s = &renewed
			deliver(Event{Secret: s, Renewed: true})
		case <-w.DoneCh():
			return nil
		}
	}
}
