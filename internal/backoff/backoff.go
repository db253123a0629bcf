// Package backoff owns the one retry policy of secrets-broker: exponential
// backoff with full jitter (the wait before attempt n is uniform in
// [0, min(Max, Base*2^n)]), so that many brokers failing together do not
// retry together. Every retry loop (Vault connect, login, fetch, lease
// keeping, KMS calls) uses it, reports each failed attempt with the next
// delay, and is bounded by a deadline or its context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is a base and a cap.
type Policy struct {
	// Base is the ceiling of the first wait; it doubles with every attempt.
	Base time.Duration
	// Max caps the ceiling.
	Max time.Duration
}

// Default is the policy for reaching a source that is down or sealed:
// 250 ms doubling to 1 minute.
func Default() Policy { return Policy{Base: 250 * time.Millisecond, Max: time.Minute} }

// Ceiling is the largest wait before attempt n (from 0).
func (p Policy) Ceiling(n int) time.Duration {
	base, limit := max(p.Base, time.Millisecond), max(p.Max, p.Base)
	d := base
	for i := 0; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// Delay is the wait before attempt n: uniform in [0, Ceiling(n)] (full
// jitter).
func (p Policy) Delay(n int) time.Duration {
	c := p.Ceiling(n)
	return time.Duration(rand.Int64N(int64(c) + 1))
}

// Attempt describes a failed attempt to the caller's log.
type Attempt struct {
	// N counts failed attempts from 1.
	N   int
	Err error
	// Next is the wait before the next attempt; zero when there is none.
	Next time.Duration
	// Last is true when no attempt follows (the error is not retryable,
	// the deadline has passed, or ctx ended).
	Last bool
}

// Retry calls try until it succeeds, fails with an error retryable calls
// permanent, the deadline passes (a zero deadline means a single attempt),
// or ctx ends. After every failure it calls failed (when not nil) with the
// wait before the next attempt. It returns try's last error.
func (p Policy) Retry(ctx context.Context, deadline time.Time, retryable func(error) bool, failed func(Attempt), try func() error) error {
	for n := 0; ; n++ {
		err := try()
		if err == nil {
			return nil
		}
		wait := p.Delay(n)
		last := !retryable(err) || ctx.Err() != nil || deadline.IsZero() || !time.Now().Add(wait).Before(deadline)
		if last && retryable(err) && ctx.Err() == nil && !deadline.IsZero() {
			// The deadline falls inside the wait: one last try at it.
			if until := time.Until(deadline); until > 0 {
				wait, last = until, false
			}
		}
		if failed != nil {
			a := Attempt{N: n + 1, Err: err, Last: last}
			if !last {
				a.Next = wait
			}
			failed(a)
		}
		if last {
			return err
		}
		if !Sleep(ctx, wait) {
			return err
		}
	}
}

// Sleep waits d or until ctx ends, and reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
