package vault_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/pgtest"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// Vault's database engine against a real PostgreSQL: credentials with a 10 s
// TTL and a 30 s max TTL. Keep must renew them, fetch new ones at max TTL,
// and the credentials it hands out must log in at every moment.
func TestDynamicDatabaseCredentials(t *testing.T) {
	pg := pgtest.Start(t)
	v := vaulttest.Start(t)
	v.DatabaseRole(t, pg.Port, pg.User, pg.Password, "10s", "30s")
	c := connect(t, v, nil)

	type creds struct{ user, pass string }
	var (
		mu       sync.Mutex
		current  creds
		fetches  int
		renewals int
		failures []string
	)
	login := func(cr creds, when string) {
		out, err := pg.Psql(cr.user, cr.pass, "postgres", "select current_user")
		if err != nil || out != cr.user {
			mu.Lock()
			failures = append(failures, fmt.Sprintf("%s: login as %s failed: %v %s", when, cr.user, err, out))
			mu.Unlock()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 48*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- c.Keep(ctx, ref(t, "database/creds/app"), vault.KeepOptions{}, func(ev vault.Event) {
			if ev.Err != nil {
				mu.Lock()
				failures = append(failures, "fetch: "+ev.Err.Error())
				mu.Unlock()
				return
			}
			user, _ := ev.Secret.Field("username")
			pass, _ := ev.Secret.Field("password")
			if ev.Secret.Lease.ID == "" || ev.Secret.Lease.TTL <= 0 || ev.Secret.Lease.TTL > 10*time.Second || !ev.Secret.Lease.Renewable {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("bad lease %+v", ev.Secret.Lease))
				mu.Unlock()
			}
			mu.Lock()
			if ev.Renewed {
				renewals++
			} else {
				fetches++
			}
			current = creds{user, pass}
			mu.Unlock()
			if !ev.Renewed {
				login(creds{user, pass}, "new credentials")
			}
		})
	}()
	// Every second, the credentials handed out last must log in.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			mu.Lock()
			cr := current
			mu.Unlock()
			if cr.user != "" {
				login(cr, time.Now().Format(time.TimeOnly))
			}
		}
	}
	if err := <-done; err != context.DeadlineExceeded {
		t.Fatalf("Keep ended with %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range failures {
		t.Error(f)
	}
	// 48 s with a 30 s max TTL: at least two fetches; renewals in between.
	if fetches < 2 || renewals < 1 {
		t.Fatalf("fetches %d, renewals %d: want >= 2 fetches and >= 1 renewal", fetches, renewals)
	}
	t.Logf("fetches %d, renewals %d over 48 s", fetches, renewals)
}
