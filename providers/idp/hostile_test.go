package idp_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers/idp"
)

// What a hostile or careless IdP can answer (the second review of the
// token feature found each of these; each test failed before its fix).

func refuse(w http.ResponseWriter, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": desc})
}

// An IdP (or a WAF before it) that echoes the request body past the 200
// bytes shown: the cut leaves no piece of the secret.
func TestAnEchoCutShortLeavesNoPieceOfTheSecret(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		refuse(w, "bad request body: "+strings.Repeat("p", 150)+" client_secret="+r.PostForm.Get("client_secret"))
	}))
	defer srv.Close()
	_, err := fetch(t, idp.Source{Name: "api", TokenURL: srv.URL, AuthMethod: idp.ClientSecretPost, ClientID: "svc", ClientSecret: secret})
	if err == nil || strings.Contains(err.Error(), secret[:8]) || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("error %v: want invalid_client and no piece of the secret", err)
	}
}

// A secret with + / = sent in a Basic header (form-encoded first, RFC 6749
// 2.3.1) and echoed back: neither the header nor its decoded form shows.
func TestAnEchoedBasicHeaderIsRedacted(t *testing.T) {
	const s = "Zm9v+YmFy/c2VjcmV0=a9"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse(w, "unknown credentials in "+r.Header.Get("Authorization"))
	}))
	defer srv.Close()
	_, err := fetch(t, idp.Source{Name: "api", TokenURL: srv.URL, AuthMethod: idp.ClientSecretBasic, ClientID: "svc", ClientSecret: s})
	if err == nil || strings.Contains(err.Error(), "Basic c3ZjOl") || strings.Contains(err.Error(), "Zm9v") {
		t.Fatalf("the error carries the Basic credentials: %v", err)
	}
}

// A form-encoded answer's expires_in is the lifetime, as a JSON one's is.
func TestAFormEncodedAnswerKeepsItsLifetime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		fmt.Fprint(w, "access_token=abcdef&token_type=bearer&expires_in=60")
	}))
	defer srv.Close()
	tok, err := fetch(t, idp.Source{Name: "api", TokenURL: srv.URL, AuthMethod: idp.ClientSecretBasic, ClientID: "svc", ClientSecret: secret})
	if err != nil || tok.Lifetime() != time.Minute || tok.LifetimeGuessed {
		t.Fatalf("token %+v, %v: want the IdP's 60 s", tok, err)
	}
}

// A token that has expired by the time its answer arrives is refused, and
// the retries back off: the IdP cannot set the broker asking in a loop.
func TestATokenExpiredOnArrivalIsRefusedAndRetriedWithBackoff(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		time.Sleep(1100 * time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"abcdef","token_type":"bearer","expires_in":1}`)
	}))
	defer srv.Close()
	c, err := idp.New(idp.Source{Name: "api", TokenURL: srv.URL, AuthMethod: idp.ClientSecretBasic, ClientID: "svc", ClientSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	var tokens, failures int
	idp.Keep(ctx, c.Fetch, nil, func(ev idp.Event) {
		if ev.Token != nil {
			tokens++
		} else if strings.Contains(ev.Err.Error(), "had expired when its answer arrived") {
			failures++
		}
	})
	if tokens != 0 || failures == 0 {
		t.Errorf("%d tokens delivered, %d refused: an expired token must never be delivered", tokens, failures)
	}
	if n.Load() > 5 {
		t.Errorf("%d requests in 6 s: the retries do not back off", n.Load())
	}
}

// Oversized answers fail to read instead of being decoded whole: headers
// past 64 KiB, a body past 256 KiB.
func TestOversizedAnswersAreRefused(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"headers": func(w http.ResponseWriter, r *http.Request) {
			for i := range 8 {
				w.Header().Add(fmt.Sprintf("X-J%d", i), strings.Repeat("a", 1<<20))
			}
			fmt.Fprint(w, `{"access_token":"abcdef","expires_in":3600}`)
		},
		"body": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"access_token":"abcdef","expires_in":3600,"x":[`+strings.Repeat("{},", 1<<18)+`{}]}`)
		},
	} {
		srv := httptest.NewServer(h)
		_, err := fetch(t, idp.Source{Name: "api", TokenURL: srv.URL, AuthMethod: idp.ClientSecretBasic, ClientID: "svc", ClientSecret: secret})
		srv.Close()
		if err == nil {
			t.Errorf("%s: an oversized answer was accepted", name)
		}
	}
}

// An https issuer's discovery document cannot send the credentials to a
// plain-http loopback port.
func TestDiscoveryCannotDowngradeToPlainHTTP(t *testing.T) {
	var got atomic.Value
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization"))
		http.Error(w, "", http.StatusBadRequest)
	}))
	defer plain.Close()
	var iss *httptest.Server
	iss = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":%q}`, iss.URL, plain.URL+"/token")
	}))
	defer iss.Close()
	pool := x509.NewCertPool()
	pool.AddCert(iss.Certificate())
	_, err := fetch(t, idp.Source{Name: "api", Issuer: iss.URL, RootCAs: pool, AuthMethod: idp.ClientSecretBasic, ClientID: "svc", ClientSecret: secret})
	if a, _ := got.Load().(string); a != "" || err == nil || fail.KindOf(err) != fail.Denied {
		t.Fatalf("sent %q to %s; error %v", a, plain.URL, err)
	}
}
