package health_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/health"
	"github.com/secrets-broker/secrets-broker/internal/testca"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func serve(t *testing.T, l health.Listener) *health.State {
	t.Helper()
	st := health.NewState(time.Minute)
	st.Rendered(nil)
	srv, err := health.Serve(l, st, health.NewMetrics(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return st
}

// peerCN is the common name of the certificate the listener presents.
func peerCN(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// With metrics_tls_cert the listener speaks only HTTPS, health checks it
// against the certificate file (no CA needed), and a rotated certificate
// is served at the next handshake with no restart.
func TestListenerServesTLSAndPicksUpARotatedCertificate(t *testing.T) {
	ca := testca.New(t, "metrics")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, "metrics-1", crt, key)
	addr := freeAddr(t)
	serve(t, health.Listener{Addr: addr, CertFile: crt, KeyFile: key})
	if answer, err := health.Check(t.Context(), addr, false, crt); err != nil || answer != "ok\n" {
		t.Fatalf("Check over TLS: %q %v", answer, err)
	}
	if _, err := health.Check(t.Context(), addr, false, ""); err == nil {
		t.Fatal("plain HTTP was answered by a TLS listener")
	}
	// A certificate other than the configured one is not trusted.
	other := filepath.Join(dir, "other.crt")
	ca.WritePair(t, "someone-else", other, filepath.Join(dir, "other.key"))
	if _, err := health.Check(t.Context(), addr, false, other); err == nil || !strings.Contains(err.Error(), "is not the one in") {
		t.Fatalf("Check accepted a certificate other than the pinned one: %v", err)
	}
	if cn := peerCN(t, addr); cn != "metrics-1" {
		t.Fatalf("serving %q", cn)
	}
	ca.WritePair(t, "metrics-2", crt, key)
	if cn := peerCN(t, addr); cn != "metrics-2" {
		t.Fatalf("after rotation still serving %q", cn)
	}
	if _, err := health.Check(t.Context(), addr, false, crt); err != nil {
		t.Fatalf("Check after rotation: %v", err)
	}
}

// A bad certificate is refused at start, naming the file.
func TestListenerRefusesABadCertificate(t *testing.T) {
	dir := t.TempDir()
	_, err := health.Serve(health.Listener{Addr: freeAddr(t), CertFile: filepath.Join(dir, "none.crt"), KeyFile: filepath.Join(dir, "none.key")},
		health.NewState(time.Minute), health.NewMetrics(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "none.crt") {
		t.Fatalf("Serve with a missing certificate: %v", err)
	}
}

// A flood of requests gets 429 past the rate (with Retry-After), so the
// answers served stay within burst + rate x elapsed.
func TestListenerBoundsRequestsPerSecond(t *testing.T) {
	addr := freeAddr(t)
	serve(t, health.Listener{Addr: addr, RequestsPerSecond: 5})
	start := time.Now()
	var mu sync.Mutex
	codes := map[int]int{}
	retryAfter := ""
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				resp, err := http.Get("http://" + addr + "/metrics")
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusTooManyRequests {
					retryAfter = resp.Header.Get("Retry-After")
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	allowed := 6 + int(5*elapsed.Seconds()) + 1 // burst + rate x time
	if codes[http.StatusOK] > allowed || codes[http.StatusTooManyRequests] == 0 || retryAfter != "1" {
		t.Fatalf("200: %d (at most %d in %v), 429: %d, Retry-After %q", codes[http.StatusOK], allowed, elapsed, codes[http.StatusTooManyRequests], retryAfter)
	}
}

// Connections from other hosts past the bound are closed at once (a
// flood cannot queue ahead of later clients); once one closes, a new one
// is served. Loopback clients (the health command of an exec probe) are
// not counted.
func TestListenerBoundsConnections(t *testing.T) {
	hold := func(t *testing.T, addr string, n int) []net.Conn {
		var held []net.Conn
		for range n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			// A request on each makes sure the server accepted it.
			c.Write([]byte("GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"))
			buf := make([]byte, 12)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HTTP/1.1 200" {
				t.Fatalf("held connection: %q %v", buf, err)
			}
			held = append(held, c)
		}
		return held
	}
	t.Run("counted", func(t *testing.T) {
		addr := freeAddr(t)
		serve(t, health.CountingLoopback(health.Listener{Addr: addr, MaxConnections: 2}))
		held := hold(t, addr, 2)
		if _, err := health.Check(context.Background(), addr, true, ""); err == nil {
			t.Fatal("a third connection was served while two held every slot")
		}
		held[1].Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := health.Check(context.Background(), addr, true, "")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after a slot freed: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		held[0].Close()
	})
	t.Run("loopback not counted", func(t *testing.T) {
		addr := freeAddr(t)
		serve(t, health.Listener{Addr: addr, MaxConnections: 1})
		held := hold(t, addr, 3)
		if _, err := health.Check(context.Background(), addr, true, ""); err != nil {
			t.Fatalf("an exec probe over loopback was starved: %v", err)
		}
		for _, c := range held {
			c.Close()
		}
	})
}

// A flood of /metrics past the rate never fails the probes.
func TestProbesAreNotRateLimited(t *testing.T) {
	addr := freeAddr(t)
	serve(t, health.Listener{Addr: addr, RequestsPerSecond: 1})
	limited := 0
	for range 20 {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("the /metrics flood was not limited")
	}
	for _, p := range []string{"/livez", "/readyz"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s during the flood: %v %v", p, err, resp.Status)
		}
		resp.Body.Close()
	}
}
