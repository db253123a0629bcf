package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelayIsFullJitterUnderTheCeiling(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: 2 * time.Second}
	wantCeil := []time.Duration{100, 200, 400, 800, 1600, 2000, 2000}
	for n, c := range wantCeil {
		if got := p.Ceiling(n); got != c*time.Millisecond {
			t.Fatalf("Ceiling(%d) = %v, want %v", n, got, c*time.Millisecond)
		}
	}
	// Full jitter: uniform over [0, ceiling], so over many draws some fall
	// in the lowest and the highest tenth, and the mean is near half.
	const draws = 20000
	var sum time.Duration
	low, high := 0, 0
	for range draws {
		d := p.Delay(4)
		if d < 0 || d > 1600*time.Millisecond {
			t.Fatalf("Delay(4) = %v, outside [0, 1.6s]", d)
		}
		if d < 160*time.Millisecond {
			low++
		}
		if d > 1440*time.Millisecond {
			high++
		}
		sum += d
	}
	mean := sum / draws
	if mean < 700*time.Millisecond || mean > 900*time.Millisecond {
		t.Errorf("mean delay %v; full jitter over [0, 1.6s] has mean 0.8s", mean)
	}
	if low < draws/20 || high < draws/20 {
		t.Errorf("draws in the lowest tenth %d, highest tenth %d: not spread over the whole range", low, high)
	}
}

var errDown = errors.New("down")

func retryable(err error) bool { return errors.Is(err, errDown) }

func TestRetryReportsEveryFailureWithTheNextDelay(t *testing.T) {
	p := Policy{Base: time.Millisecond, Max: 4 * time.Millisecond}
	var attempts []Attempt
	calls := 0
	err := p.Retry(context.Background(), time.Now().Add(time.Minute), retryable, func(a Attempt) { attempts = append(attempts, a) }, func() error {
		calls++
		if calls < 4 {
			return errDown
		}
		return nil
	})
	if err != nil || calls != 4 {
		t.Fatalf("err %v after %d calls; want success on the 4th", err, calls)
	}
	if len(attempts) != 3 {
		t.Fatalf("%d failures reported, want 3", len(attempts))
	}
	for i, a := range attempts {
		if a.N != i+1 || a.Last || a.Next > p.Ceiling(i) || !errors.Is(a.Err, errDown) {
			t.Errorf("attempt %d reported as %+v", i+1, a)
		}
	}
}

func TestRetryStopsOnPermanentErrorsZeroDeadlineAndCancel(t *testing.T) {
	p := Policy{Base: time.Millisecond, Max: time.Millisecond}
	perm := errors.New("denied")
	calls := 0
	var last Attempt
	err := p.Retry(context.Background(), time.Now().Add(time.Minute), retryable, func(a Attempt) { last = a }, func() error { calls++; return perm })
	if !errors.Is(err, perm) || calls != 1 || !last.Last || last.Next != 0 {
		t.Fatalf("permanent error: err %v, %d calls, last %+v; want one call reported as the last", err, calls, last)
	}
	calls = 0
	err = p.Retry(context.Background(), time.Time{}, retryable, nil, func() error { calls++; return errDown })
	if !errors.Is(err, errDown) || calls != 1 {
		t.Fatalf("zero deadline: %d calls, want 1", calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = Policy{Base: time.Hour, Max: time.Hour}.Retry(ctx, time.Now().Add(2*time.Hour), retryable, func(a Attempt) {
		if !a.Last {
			cancel() // cancelled while it would wait
		}
	}, func() error { calls++; return errDown })
	if !errors.Is(err, errDown) || calls != 1 {
		t.Fatalf("cancelled during the wait: err %v, %d calls; want the last error after 1 call", err, calls)
	}
}

func TestRetryMakesALastAttemptAtTheDeadline(t *testing.T) {
	// The wait would pass the deadline: Retry tries once more at the
	// deadline instead of giving up early or waiting past it.
	p := Policy{Base: time.Hour, Max: time.Hour}
	calls := 0
	start := time.Now()
	deadline := start.Add(50 * time.Millisecond)
	err := p.Retry(context.Background(), deadline, retryable, nil, func() error { calls++; return errDown })
	if !errors.Is(err, errDown) {
		t.Fatal(err)
	}
	if calls < 2 || time.Now().Before(deadline) {
		t.Fatalf("%d calls, returned before the deadline: %v; want a first try and one at the deadline", calls, time.Now().Before(deadline))
	}
}
