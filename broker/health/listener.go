package health

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/secrets-broker/secrets-broker/internal/certreload"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/loopback"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// Listener says where and how the daemon serves its probes and metrics.
type Listener struct {
	// Addr is HOST:PORT; loopback unless the pod's scraper must reach it.
	Addr string
	// CertFile and KeyFile, when set, serve HTTPS; both are read again
	// whenever they change (cert-manager rotates them).
	CertFile, KeyFile string
	// RequestsPerSecond bounds the requests served (with a burst of as
	// many); more are answered 429. Default DefaultRequestsPerSecond.
	RequestsPerSecond float64
	// MaxConnections bounds the connections from other hosts open at once;
	// more are closed at once. Loopback connections (the health command of
	// an exec probe) do not count, so a flood from the network cannot
	// starve the probe. Default DefaultMaxConnections.
	MaxConnections int

	// exempt says which clients the connection bound spares (nil:
	// loopback); tests count loopback clients too.
	exempt func(net.Addr) bool
}

// The listener's defaults: a Prometheus scraper and two kubelet probes
// need a few requests a second; a flood gets 429 and waits, so it can cost
// the daemon little CPU and memory whatever it sends.
const (
	DefaultRequestsPerSecond = 20
	DefaultMaxConnections    = 16
)

// Serve listens on l.Addr and serves /metrics (m), /readyz and /healthz
// (st.Ready) and /livez (st.Alive) until the returned server is closed.
func Serve(l Listener, st *State, m *Metrics, log *slog.Logger) (*http.Server, error) {
	if l.RequestsPerSecond <= 0 {
		l.RequestsPerSecond = DefaultRequestsPerSecond
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	var tlsConfig *tls.Config
	if l.CertFile != "" || l.KeyFile != "" {
		pair := certreload.New(l.CertFile, l.KeyFile)
		if _, err := pair.Load(); err != nil {
			return nil, fmt.Errorf("cannot serve metrics over TLS: refresh.metrics_tls_cert: %w", err)
		}
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: pair.ServerCertificate}
	}
	ln, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot serve metrics on %s: %w", l.Addr, err)
	}
	if l.exempt == nil {
		l.exempt = func(a net.Addr) bool {
			tcp, ok := a.(*net.TCPAddr)
			return ok && tcp.IP.IsLoopback()
		}
	}
	ln = &boundedListener{Listener: ln, slots: make(chan struct{}, l.MaxConnections), exempt: l.exempt}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	srv := &http.Server{
		Handler:           limit(rate.NewLimiter(rate.Limit(l.RequestsPerSecond), int(l.RequestsPerSecond)+1), routes(st, m)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       5 * time.Second, // an idle keep-alive gives its slot back soon
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(slog.DiscardHandler, slog.LevelError), // TLS handshake noise from scanners
	}
	go srv.Serve(ln)
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
	}
	log.Info("serving metrics", "address", ln.Addr().String(), "scheme", scheme, "requests_per_second", l.RequestsPerSecond, "max_connections", l.MaxConnections)
	if host, _, _ := net.SplitHostPort(l.Addr); tlsConfig == nil && !loopback.Host(host) {
		log.Warn("refresh.metrics_address is not loopback and is served over plain HTTP: anyone on the network can read which outputs fail and which secrets are stale (never a value); set refresh.metrics_tls_cert and metrics_tls_key to serve HTTPS", "address", l.Addr)
	}
	return srv, nil
}

// boundedListener accepts at most cap(slots) connections from clients
// exempt does not spare, and closes the rest at once (queueing them would
// let a flood hold every later client, the kubelet's probe included).
type boundedListener struct {
	net.Listener
	slots  chan struct{}
	exempt func(net.Addr) bool
}

func (b *boundedListener) Accept() (net.Conn, error) {
	for {
		c, err := b.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if b.exempt(c.RemoteAddr()) {
			return c, nil
		}
		select {
		case b.slots <- struct{}{}:
			return &slotConn{Conn: c, free: func() { <-b.slots }}, nil
		default:
			c.Close()
		}
	}
}

type slotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}

// limit answers 429 past the limiter's rate, before any work is done.
// Probes (/livez, /readyz, /healthz) are not limited: a flood of /metrics
// must not fail them (a kubelet restarts a pod whose liveness fails).
func limit(l *rate.Limiter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/livez" || r.URL.Path == "/readyz" || r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		if !l.Allow() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many requests: the daemon serves at most "+strconv.FormatFloat(float64(l.Limit()), 'f', -1, 64)+" a second", http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func routes(st *State, m *Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.reg.Handler())
	ready := func(w http.ResponseWriter, _ *http.Request) {
		ok, msg := st.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprint(w, msg)
	}
	// /readyz: every output rendered, none failing, no secret stale.
	// /healthz is the same, for configs written before /readyz.
	mux.HandleFunc("/readyz", ready)
	mux.HandleFunc("/healthz", ready)
	// /livez: the main loop is going round (restart the container if not).
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		if !st.Alive() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "the daemon's main loop has not gone round for over a minute")
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Check asks a running daemon, at its metrics address (on loopback: an
// exec probe needs no exposed port), whether it is ready (or, with live,
// alive). With certFile (the daemon's refresh.metrics_tls_cert) it speaks
// HTTPS and accepts only the certificate in that file: the probe needs no
// CA. It returns the daemon's answer; an error when it is not ready, or
// cannot be reached (class Unavailable).
func Check(ctx context.Context, addr string, live bool, certFile string) (string, error) {
	path := "/readyz"
	if live {
		path = "/livez"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	scheme := "http"
	client := &http.Client{}
	if certFile != "" {
		scheme = "https"
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, // pinned below instead
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { return pinned(certFile, raw) }}
		client.Transport = tr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+path, nil)
	if err != nil {
		return "", fail.Mark(fail.Usage, fmt.Errorf("health: %w", err))
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fail.Mark(fail.Unavailable, fmt.Errorf("health: the daemon does not answer at %s: %w", addr, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return string(body), fail.Mark(fail.Unavailable, fmt.Errorf("health: %s answers %s: %s", path, resp.Status, strings.TrimSpace(string(body))))
	}
	return string(body), nil
}

// pinned accepts the daemon's certificate only if it is the one in
// certFile (read now: the daemon reads a rotated file at its next
// handshake too).
func pinned(certFile string, raw [][]byte) error {
	data, err := readlimit.File(certFile, certreload.MaxFileLen, "the certificate file "+certFile)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(data)
	if block == nil || len(raw) == 0 {
		return errors.New("no certificate to compare")
	}
	if !bytes.Equal(block.Bytes, raw[0]) {
		return fmt.Errorf("the daemon's certificate is not the one in %s", certFile)
	}
	return nil
}
