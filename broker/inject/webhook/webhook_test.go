package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/inject"
	"github.com/secrets-broker/secrets-broker/broker/inject/webhook"
	"github.com/secrets-broker/secrets-broker/internal/testca"
)

var opts = inject.Options{Image: "secrets-broker@sha256:abc", VaultAddress: "https://vault.vault.svc:8200", TokenAudience: "vault", HealthPort: 9102}

// review wraps a pod (JSON) in an AdmissionReview as the API server sends it.
func review(uid, pod string) string {
	return `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid + `","kind":{"group":"","version":"v1","kind":"Pod"},` +
		`"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"apps","operation":"CREATE","object":` + pod + `}}`
}

const annotatedPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"vault.hashicorp.com/agent-inject":"true","vault.hashicorp.com/role":"web",` +
	`"vault.hashicorp.com/agent-inject-secret-db":"secret/data/db"}},"spec":{"containers":[{"name":"app","image":"app"}]}}`

func post(t *testing.T, h http.Handler, ct, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/mutate", strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type answer struct {
	Response struct {
		UID       string   `json:"uid"`
		Allowed   bool     `json:"allowed"`
		Patch     []byte   `json:"patch"`
		PatchType string   `json:"patchType"`
		Warnings  []string `json:"warnings"`
		Status    struct {
			Message string `json:"message"`
			Code    int    `json:"code"`
		} `json:"status"`
	} `json:"response"`
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer %d is not a review: %v\n%s", rec.Code, err, rec.Body)
	}
	return a
}

func TestReviewPatchesAnAnnotatedPod(t *testing.T) {
	h := webhook.Handler{Options: opts}
	a := decode(t, post(t, h, "application/json", review("u-1", annotatedPod)))
	if a.Response.UID != "u-1" || !a.Response.Allowed || a.Response.PatchType != "JSONPatch" || !bytes.Contains(a.Response.Patch, []byte(`"secrets-broker"`)) {
		t.Fatalf("answer: %+v", a.Response)
	}
	// Not annotated: allowed, no patch.
	a = decode(t, post(t, h, "application/json", review("u-2", `{"metadata":{"name":"q"},"spec":{"containers":[{"name":"app","image":"app"}]}}`)))
	if !a.Response.Allowed || len(a.Response.Patch) != 0 {
		t.Fatalf("plain pod: %+v", a.Response)
	}
	// A bad annotation: refused, naming it.
	bad := strings.Replace(annotatedPod, `"vault.hashicorp.com/role":"web"`, `"vault.hashicorp.com/role":"web","vault.hashicorp.com/tls-skip-verify":"true"`, 1)
	a = decode(t, post(t, h, "application/json", review("u-3", bad)))
	if a.Response.Allowed || a.Response.Status.Code != 400 || !strings.Contains(a.Response.Status.Message, "vault.hashicorp.com/tls-skip-verify") {
		t.Fatalf("bad annotation: %+v", a.Response)
	}
}

// Malformed and hostile requests get 400 (or 413, 415) and never a panic or
// a patch.
func TestHostileReviews(t *testing.T) {
	h := webhook.Handler{Options: opts}
	for name, c := range map[string]struct {
		ct, body string
		code     int
	}{
		"not json":         {"application/json", "{{{", 400},
		"two values":       {"application/json", review("u", annotatedPod) + "{}", 400},
		"wrong kind":       {"application/json", `{"apiVersion":"v1","kind":"Pod"}`, 400},
		"no request":       {"application/json", `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, 400},
		"no uid":           {"application/json", review("", annotatedPod), 400},
		"long uid":         {"application/json", review(strings.Repeat("u", 200), annotatedPod), 400},
		"object not pod":   {"application/json", review("u", `[1,2]`), 400},
		"wrong type":       {"text/plain", review("u", annotatedPod), 415},
		"too large":        {"application/json", review("u", `{"metadata":{"annotations":{"x":"`+strings.Repeat("a", webhook.MaxReviewLen)+`"}}}`), 413},
		"deep nesting":     {"application/json", review("u", strings.Repeat("[", 100000)), 400},
		"annotation flood": {"application/json", review("u", `{"metadata":{"annotations":{"vault.hashicorp.com/agent-inject":"true","vault.hashicorp.com/role":"r","big":"`+strings.Repeat("b", 300<<10)+`"}}}`), 200},
	} {
		rec := post(t, h, c.ct, c.body)
		if rec.Code != c.code {
			t.Errorf("%s: status %d, want %d: %s", name, rec.Code, c.code, rec.Body)
		}
		if c.code == 200 {
			if a := decode(t, rec); a.Response.Allowed || !strings.Contains(a.Response.Status.Message, "metadata.annotations") {
				t.Errorf("%s: %+v", name, a.Response)
			}
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/mutate", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
}

// The serving certificate is read again when the files change: a new
// connection gets the new certificate, without a restart.
func TestCertificateRotation(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "injector-ca")
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, "first", crt, key)
	ctx, cancel := context.WithCancel(context.Background())
	addrc, errc := make(chan string, 1), make(chan error, 1)
	go func() {
		errc <- webhook.Server{Addr: "127.0.0.1:0", CertFile: crt, KeyFile: key, Handler: webhook.Handler{Options: opts}}.Run(ctx, func(a string) { addrc <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	})
	var addr string
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatal(err)
	}
	cn := func() string {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := cn(); got != "first" {
		t.Fatalf("serving %q", got)
	}
	// Same mtime granularity is no obstacle: the pair is replaced by
	// rename (a new inode), as a Secret volume update does.
	ca.WritePair(t, "second", crt, key)
	deadline := time.Now().Add(10 * time.Second)
	for cn() != "second" {
		if time.Now().After(deadline) {
			t.Fatal("the rotated certificate is not served")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// TLS below 1.2 is refused.
	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("TLS 1.1 accepted")
	}
	// A missing key fails at start, naming the file.
	os.Remove(key)
	err := webhook.Server{Addr: "127.0.0.1:0", CertFile: crt, KeyFile: key}.Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "tls.key") {
		t.Errorf("missing key: %v", err)
	}
}

// Reviews past MaxConcurrent in flight wait a second for a slot, then get
// 503: slow uploads cannot pile up bodies past the memory limit.
func TestConcurrentReviewsAreBounded(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 8)
	h := webhook.Bounded(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}), 2)
	done := make(chan int, 3)
	for range 3 {
		go func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mutate", nil))
			done <- rec.Code
		}()
	}
	<-entered
	<-entered
	if code := <-done; code != http.StatusServiceUnavailable {
		t.Fatalf("a third concurrent review: %d, want 503", code)
	}
	close(release)
	for range 2 {
		if code := <-done; code != http.StatusOK {
			t.Errorf("a review in a slot: %d", code)
		}
	}
}
