// Command tokenfleet asks whether a fleet of brokers refreshes its access
// tokens flat or in lockstep (issue 20). It starts an OpenID provider
// (internal/oidctest: zitadel's pkg/op on loopback TLS) issuing tokens of
// -lifetime, then N clients at once, and records the token requests per
// second the OP received over -cycles lifetimes after the last client had
// its first token: mean, peak, peak/mean (target < 2x, as for leases).
//
// Two fleets run in the same run, each against a fresh OP:
//   - baseline: N in-process golang.org/x/oauth2 clients, the code a service
//     carries today: clientcredentials behind ReuseTokenSourceWithExpiry,
//     refreshing 1/6 of the lifetime before expiry (a fixed point), each
//     asking for its token every 100 ms as calls to an API would;
//   - secrets-broker: N `secrets-broker run` daemons writing a token file.
//
// It then prints the arithmetic for 1 h tokens: requests per pod per hour
// and what 10,000 pods ask of one client id.
//
// Usage: go run ./bench/tokenfleet -broker BIN [-n 200] [-lifetime 10s] [-cycles 4]
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/secrets-broker/secrets-broker/bench/rate"
	"github.com/secrets-broker/secrets-broker/internal/oidctest"
)

// tb is what oidctest.Start needs, outside a test.
type tb struct{ cleanups []func() }

func (*tb) Helper()                           {}
func (*tb) Fatalf(format string, args ...any) { log.Fatalf("tokenfleet: "+format, args...) }
func (t *tb) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }
func (t *tb) close() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

const secret = "fleet-client-secret-value"

type stats struct {
	startup  time.Duration
	burst    int
	requests int
	mean     float64
	peak     int
}

func main() {
	broker := flag.String("broker", "", "secrets-broker binary to run")
	n := flag.Int("n", 200, "clients")
	lifetime := flag.Duration("lifetime", 10*time.Second, "access token lifetime")
	cycles := flag.Int("cycles", 4, "lifetimes to record after the last client had its token")
	flag.Parse()
	if *broker == "" {
		log.Fatal("tokenfleet: -broker is required")
	}
	fmt.Printf("%d clients, token lifetime %s, recording %d lifetimes after the last first token\n", *n, *lifetime, *cycles)
	fmt.Printf("%-15s %9s %7s %9s %8s %7s %9s\n", "fleet", "startup", "burst", "requests", "mean/s", "peak/s", "peak/mean")
	results := map[string]stats{}
	for _, run := range []struct {
		label string
		fleet func(*oidctest.Provider, int, string) (func() bool, func(), func() error, error)
	}{{"baseline", oauth2Fleet(*lifetime)}, {"secrets-broker", brokerFleet(*broker)}} {
		st, err := measure(run.fleet, *n, *lifetime, *cycles)
		if err != nil {
			log.Fatalf("tokenfleet: %s: %v", run.label, err)
		}
		results[run.label] = st
		fmt.Printf("%-15s %8.1fs %7d %9d %8.1f %7d %8.2fx\n", run.label, st.startup.Seconds(), st.burst, st.requests, st.mean, st.peak, float64(st.peak)/st.mean)
	}
	for _, label := range []string{"baseline", "secrets-broker"} {
		r := results[label]
		perLifetime := r.mean * lifetime.Seconds() / float64(*n) // requests per pod per token lifetime
		perSecond := 10000 * perLifetime / 3600                  // 10,000 pods, 1 h tokens
		fmt.Printf("%s: %.2f requests per pod per token lifetime; with 1 h tokens, 10,000 pods on one client id ask %.0f tokens/h, %.2f/s mean, %.2f/s at the measured peak/mean\n",
			label, perLifetime, perSecond*3600, perSecond, perSecond*float64(r.peak)/r.mean)
	}
}

// measure runs one fleet against a fresh OP.
func measure(fleet func(*oidctest.Provider, int, string) (func() bool, func(), func() error, error), n int, lifetime time.Duration, cycles int) (stats, error) {
	t := &tb{}
	defer t.close()
	op := oidctest.Start(t, oidctest.Client{ID: "fleet", Secret: secret, Lifetime: lifetime})
	work, err := os.MkdirTemp("", "tokenfleet-")
	if err != nil {
		return stats{}, err
	}
	if os.Getenv("KEEP") == "" {
		defer os.RemoveAll(work)
	} else {
		fmt.Fprintln(os.Stderr, "tokenfleet: keeping", work)
	}
	begin := time.Now()
	ready, stop, alive, err := fleet(op, n, work)
	if err != nil {
		return stats{}, err
	}
	defer stop()
	deadline := time.Now().Add(5 * time.Minute)
	for !ready() {
		if time.Now().After(deadline) {
			return stats{}, fmt.Errorf("not every client had a token within 5 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	from := time.Now()
	window := time.Duration(cycles) * lifetime
	time.Sleep(window)
	to := from.Add(window)
	if err := alive(); err != nil {
		return stats{}, err
	}
	var times []time.Time
	for _, r := range op.Requests() {
		times = append(times, r.At)
	}
	c := rate.Count(times, from, to)
	return stats{startup: from.Sub(begin), burst: c.Burst, requests: c.Requests, mean: c.Mean, peak: c.Peak}, nil
}

// oauth2Fleet is n services with x/oauth2's client-credentials token
// source, each asking for its token every 100 ms.
func oauth2Fleet(lifetime time.Duration) func(*oidctest.Provider, int, string) (func() bool, func(), func() error, error) {
	return func(op *oidctest.Provider, n int, _ string) (func() bool, func(), func() error, error) {
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: op.CAPool}, MaxIdleConnsPerHost: n}}
		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), oauth2.HTTPClient, hc))
		var mu sync.Mutex
		have := 0
		var wg sync.WaitGroup
		for range n {
			cc := clientcredentials.Config{ClientID: "fleet", ClientSecret: secret, TokenURL: op.TokenURL(), AuthStyle: oauth2.AuthStyleInHeader}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Refresh 1/6 of the lifetime before expiry: a fixed point, as
				// hand-written clients do.
				src := oauth2.ReuseTokenSourceWithExpiry(nil, cc.TokenSource(ctx), lifetime/6)
				first := true
				for ctx.Err() == nil {
					if tok, err := src.Token(); err == nil && first {
						first = false
						mu.Lock()
						have++
						mu.Unlock()
						_ = tok
					}
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}()
		}
		ready := func() bool { mu.Lock(); defer mu.Unlock(); return have == n }
		return ready, func() { cancel(); wg.Wait() }, func() error { return nil }, nil
	}
}

// brokerFleet is n secrets-broker daemons writing a token file.
func brokerFleet(bin string) func(*oidctest.Provider, int, string) (func() bool, func(), func() error, error) {
	return func(op *oidctest.Provider, n int, work string) (func() bool, func(), func() error, error) {
		if err := os.WriteFile(filepath.Join(work, "ca.pem"), op.CAPEM, 0o600); err != nil {
			return nil, nil, nil, err
		}
		// Each daemon watches its files with one inotify instance.
		if b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances"); err == nil {
			if limit, _ := strconv.Atoi(strings.TrimSpace(string(b))); limit > 0 && limit < n+16 {
				return nil, nil, nil, fmt.Errorf("fs.inotify.max_user_instances is %d, fewer than %d daemons need: raise it (sysctl -w fs.inotify.max_user_instances=%d) or lower -n", limit, n, n+128)
			}
		}
		os.WriteFile(filepath.Join(work, "secret"), []byte(secret), 0o600)
		cmds := make([]*exec.Cmd, n)
		outs := make([]string, n)
		for i := range n {
			dir := filepath.Join(work, strconv.Itoa(i))
			os.MkdirAll(dir, 0o700)
			cfg := fmt.Sprintf("output_root: out\ntokens:\n  api:\n    token_url: %s\n    ca_cert: %s\n    client_id: fleet\n    client_secret: file:%s\nsecrets:\n  token: token:api\noutputs:\n  - path: token\n    secret: token\n",
				op.TokenURL(), filepath.Join(work, "ca.pem"), filepath.Join(work, "secret"))
			os.WriteFile(filepath.Join(dir, "broker.yaml"), []byte(cfg), 0o600)
			logf, err := os.Create(filepath.Join(dir, "log"))
			if err != nil {
				return nil, nil, nil, err
			}
			cmds[i] = exec.Command(bin, "run", "-c", filepath.Join(dir, "broker.yaml"))
			cmds[i].Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
			cmds[i].Stdout, cmds[i].Stderr = logf, logf
			outs[i] = filepath.Join(dir, "out", "token")
		}
		var wg sync.WaitGroup
		for _, c := range cmds {
			wg.Add(1)
			go func() { defer wg.Done(); c.Start() }()
		}
		wg.Wait()
		// A daemon that exits early would make the fleet look quieter
		// than it is: any exit before stop fails the run.
		var exitMu sync.Mutex
		exited := -1
		waited := make(chan struct{}, n)
		for i, c := range cmds {
			go func() {
				if c.Process != nil {
					c.Wait()
				}
				exitMu.Lock()
				if exited < 0 {
					exited = i
				}
				exitMu.Unlock()
				waited <- struct{}{}
			}()
		}
		next := 0
		ready := func() bool {
			for next < n {
				if _, err := os.Stat(outs[next]); err != nil {
					return false
				}
				next++
			}
			return true
		}
		stop := func() {
			for _, c := range cmds {
				if c.Process != nil {
					c.Process.Signal(syscall.SIGTERM)
				}
			}
			for range cmds {
				<-waited
			}
		}
		alive := func() error {
			exitMu.Lock()
			defer exitMu.Unlock()
			if exited >= 0 {
				log, _ := os.ReadFile(filepath.Join(work, strconv.Itoa(exited), "log"))
				return fmt.Errorf("daemon %d exited during the run; its log:\n%s", exited, log)
			}
			return nil
		}
		return ready, stop, alive, nil
	}
}
