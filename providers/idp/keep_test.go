package idp_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/oidctest"
	"github.com/secrets-broker/secrets-broker/providers/idp"
)

func keep(t *testing.T, op *oidctest.Provider, lifetime time.Duration) <-chan idp.Event {
	t.Helper()
	op.AddClient(oidctest.Client{ID: "svc", Secret: secret, Lifetime: lifetime})
	c, err := idp.New(idp.Source{Name: "api", Issuer: op.Issuer, RootCAs: op.CAPool, ClientID: "svc", ClientSecret: secret, AuthMethod: idp.ClientSecretBasic})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan idp.Event, 64)
	done := make(chan struct{})
	go func() { defer close(done); idp.Keep(ctx, c.Fetch, nil, func(ev idp.Event) { events <- ev }) }()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	return events
}

func next(t *testing.T, events <-chan idp.Event, within time.Duration) idp.Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
	}
	return idp.Event{}
}

// Over several lifetimes each new token arrives after 2/3 of the held
// one's lifetime (1/3 for the first one) and before it expires: never
// early, never a gap.
func TestKeepRefreshesBeforeExpiryWithoutAGap(t *testing.T) {
	op := oidctest.Start(t)
	const life = 6 * time.Second
	events := keep(t, op, life)
	var held *idp.Token
	for i := 0; i < 4; i++ {
		ev := next(t, events, 2*life)
		if ev.Token == nil {
			t.Fatalf("refresh %d failed: %v", i, ev.Err)
		}
		if _, err := op.Verify(context.Background(), ev.Token.AccessToken); err != nil {
			t.Fatalf("token %d is not accepted: %v", i, err)
		}
		if held != nil {
			if !ev.Token.IssuedAt.Before(held.Expiry) {
				t.Errorf("token %d came at %v, after the last one expired at %v", i, ev.Token.IssuedAt, held.Expiry)
			}
			frac := time.Duration(2)
			if i == 1 {
				frac = 1
			}
			if early := held.IssuedAt.Add(held.Lifetime() * frac / 3); ev.Token.IssuedAt.Before(early) {
				t.Errorf("token %d came %v before %d/3 of the last one's lifetime", i, early.Sub(ev.Token.IssuedAt), frac)
			}
		}
		held = ev.Token
	}
	if n := op.Issued(); n != 4 {
		t.Errorf("the OP issued %d tokens for 4 refreshes", n)
	}
}

// A 429 with Retry-After is obeyed: the next request waits at least that.
func TestKeepObeysRetryAfter(t *testing.T) {
	op := oidctest.Start(t)
	op.FailNext(http.StatusTooManyRequests, "2")
	events := keep(t, op, time.Hour)
	ev := next(t, events, 10*time.Second)
	if ev.Err == nil || ev.RetryIn < 2*time.Second {
		t.Fatalf("after a 429 with Retry-After 2: %+v", ev)
	}
	if ev = next(t, events, 10*time.Second); ev.Token == nil {
		t.Fatalf("no token after the wait: %v", ev.Err)
	}
	reqs := op.Requests()
	if len(reqs) != 2 {
		t.Fatalf("want 2 requests, the OP saw %d", len(reqs))
	}
	if gap := reqs[1].At.Sub(reqs[0].At); gap < 2*time.Second {
		t.Errorf("the retry came %v after the 429, sooner than its Retry-After of 2s", gap)
	}
}

// With the OP down, the held token is kept until it expires, then its
// expiry is reported; once the OP is back a new token comes.
func TestKeepSaysWhenTheHeldTokenExpiresAndRecovers(t *testing.T) {
	op := oidctest.Start(t)
	const life = 4 * time.Second
	events := keep(t, op, life)
	first := next(t, events, 10*time.Second)
	if first.Token == nil {
		t.Fatal(first.Err)
	}
	op.SetDown(true)
	var expired idp.Event
	for expired.Expired == false {
		expired = next(t, events, 3*life)
		if expired.Token != nil {
			t.Fatal("a token came while the OP was down")
		}
	}
	if now := time.Now(); now.Before(first.Token.Expiry) {
		t.Errorf("expiry reported %v before the token expired", first.Token.Expiry.Sub(now))
	}
	op.SetDown(false)
	for {
		ev := next(t, events, 90*time.Second)
		if ev.Token != nil {
			break
		}
	}
}
