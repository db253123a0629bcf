package idp

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/redact"
)

// answer is a RoundTripper that answers every request with one response:
// the fuzzer plays a hostile IdP without a network.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: a.status, Header: a.header, Body: io.NopCloser(bytes.NewReader(a.body)), Request: r}, nil
}

const fuzzSecret = "fz-client-secret-Q9x7"

// Whatever a token endpoint answers (status, content type, Retry-After,
// body), Fetch neither panics nor returns a token that is not printable or
// past MaxTokenLen, waits at most MaxRetryAfter, and its error carries no
// form of the client secret.
func FuzzTokenResponse(f *testing.F) {
	f.Add(200, "application/json", "", []byte(`{"access_token":"abc","token_type":"Bearer","expires_in":3600}`))
	f.Add(200, "application/json", "", []byte(`{"access_token":"abc","expires_in":-1}`))
	f.Add(200, "application/json", "", []byte(`{"access_token":"abc","expires_in":"3600","scope":"a b"}`))
	f.Add(200, "application/x-www-form-urlencoded", "", []byte(`access_token=abc&expires_in=10`))
	f.Add(400, "application/json", "", []byte(`{"error":"invalid_client","error_description":"secret fz-client-secret-Q9x7 is wrong"}`))
	f.Add(429, "application/json", "120", []byte(`{"error":"slow_down"}`))
	f.Add(503, "text/html", "Wed, 21 Oct 2015 07:28:00 GMT", []byte(`<html>down</html>`))
	f.Add(200, "application/json", "", []byte(`{"access_token":"a\u0000b"}`))
	f.Add(302, "", "", []byte(``))
	f.Fuzz(func(t *testing.T, status int, contentType, retryAfter string, body []byte) {
		if status < 100 || status > 999 {
			status = 200
		}
		h := http.Header{}
		h.Set("Content-Type", contentType)
		h.Set("Retry-After", retryAfter)
		c, err := New(Source{Name: "api", TokenURL: "https://idp.example/token", ClientID: "c", ClientSecret: fuzzSecret, AuthMethod: ClientSecretBasic, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c.http.Transport = answer{status, h, body}
		tok, err := c.Fetch(context.Background())
		if err == nil {
			if tok.AccessToken == "" || len(tok.AccessToken) > MaxTokenLen || !printable(tok.AccessToken) || !tok.Expiry.After(tok.IssuedAt) || tok.Lifetime() > MaxLifetime {
				t.Fatalf("accepted %+v", tok)
			}
			return
		}
		if RetryAfterOf(err) > MaxRetryAfter || RetryAfterOf(err) < 0 {
			t.Fatalf("Retry-After %v", RetryAfterOf(err))
		}
		for _, form := range redact.Forms(fuzzSecret) {
			if strings.Contains(err.Error(), form) {
				t.Fatalf("the error carries the secret: %v", err)
			}
		}
	})
}
