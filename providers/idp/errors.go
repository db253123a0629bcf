package idp

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/redact"
)

// MaxRetryAfter bounds the wait a Retry-After header may ask for.
const MaxRetryAfter = 10 * time.Minute

// maxDescription bounds the IdP's error_description shown in a message.
const maxDescription = 200

// Error is a failed token request: which entry, what the IdP said (its
// error code, and its description bounded and printable), and how long it
// asked the broker to wait (Retry-After on 429 and 503).
type Error struct {
	kind       fail.Kind
	msg        string
	RetryAfter time.Duration
}

func (e *Error) Error() string       { return e.msg }
func (e *Error) FailKind() fail.Kind { return e.kind }
func (e *Error) Retryable() bool     { return e.kind.Retryable() }

// RetryAfterOf returns the wait an IdP asked for with err, or 0.
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// explain turns what x/oauth2 returned into an Error that names the entry
// and never carries the response body, the request or any of secrets.
func (c *Client) explain(err error, secrets []string) error {
	what := "tokens." + c.src.Name
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		var header http.Header
		if re.Response != nil {
			status, header = re.Response.StatusCode, re.Response.Header
		}
		e := &Error{kind: kindOf(status, re.ErrorCode)}
		code := re.ErrorCode
		if !safeCode(code) || echoes(code, secrets) {
			code = "" // not an RFC 6749 code, or it echoes a credential
		}
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), c.now())
		}
		switch {
		case code != "":
			e.msg = fmt.Sprintf("%s: the token endpoint refused the request (HTTP %d, error %s)", what, status, code)
		default:
			e.msg = fmt.Sprintf("%s: the token endpoint answered HTTP %d", what, status)
		}
		if d := description(re.ErrorDescription, secrets); d != "" {
			e.msg += ": the IdP says " + strconv.Quote(d)
		}
		e.msg += advice(status, code)
		if e.RetryAfter > 0 {
			e.msg += fmt.Sprintf(" (it asks to wait %s)", e.RetryAfter)
		}
		return e
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		var ne net.Error
		reason := "cannot reach it"
		if errors.As(ue.Err, &ne) && ne.Timeout() {
			reason = "it did not answer in time"
		}
		// url.Error names the URL and the network cause; neither holds
		// a credential (they travel in the body and headers).
		return &Error{kind: fail.Unavailable, msg: fmt.Sprintf("%s: token endpoint %s: %s: %s", what, c.tokenURL, reason, redact.String(ue.Err.Error(), secrets))}
	}
	return &Error{kind: fail.Format, msg: fmt.Sprintf("%s: the token endpoint's answer is not a token response (status 2xx without a usable access_token, or not JSON); its text is not shown", what)}
}

func kindOf(status int, code string) fail.Kind {
	switch code {
	case "invalid_client", "unauthorized_client", "access_denied", "unsupported_grant_type", "invalid_scope", "invalid_target", "invalid_grant":
		return fail.Denied
	case "invalid_request":
		return fail.Usage
	case "temporarily_unavailable", "slow_down":
		return fail.Unavailable
	}
	switch {
	case status >= 300 && status < 400:
		return fail.Usage
	case status == http.StatusTooManyRequests || status >= 500:
		return fail.Unavailable
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fail.Denied
	case status == http.StatusNotFound:
		return fail.NotFound
	}
	return fail.Denied
}

func advice(status int, code string) string {
	switch code {
	case "invalid_client":
		return "; check client_id, the client secret or key, and auth (the IdP also says this for a disabled or revoked client)"
	case "unauthorized_client":
		return "; the IdP does not let this client use the client_credentials grant"
	case "invalid_scope":
		return "; the client may not ask for these scopes: check scopes"
	case "invalid_target":
		return "; check audience and resource"
	}
	if status == http.StatusTooManyRequests {
		return "; the IdP is rate limiting this client"
	}
	if status >= 300 && status < 400 {
		return "; the token endpoint redirects and redirects are not followed: set token_url (or issuer) to where it points"
	}
	return ""
}

// safeCode says whether an error code is what RFC 6749 5.2 allows (a short
// word of printable ASCII without quotes or backslashes).
func safeCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\' {
			return false
		}
	}
	return true
}

// description makes the IdP's error_description safe to show: printable
// ASCII only, every form of the credentials sent removed first, then cut
// to maxDescription bytes; left out whole if a piece of a credential is
// still in it (the IdP may have cut its echo itself).
func description(d string, secrets []string) string {
	const scan = 4 << 10
	b := make([]byte, 0, min(len(d), scan))
	for i := 0; i < len(d) && len(b) < scan; i++ {
		if d[i] >= 0x20 && d[i] <= 0x7e {
			b = append(b, d[i])
		}
	}
	out := redact.String(string(b), secrets)
	if echoes(out, secrets) {
		return ""
	}
	if len(out) > maxDescription {
		out = out[:maxDescription]
	}
	return out
}

// echoPiece is the shortest piece of a credential taken as an echo of it.
const echoPiece = 8

// echoes says whether text holds a credential, whole or any piece of
// echoPiece bytes of one (in any form redact knows).
func echoes(text string, secrets []string) bool {
	if redact.String(text, secrets) != text {
		return true
	}
	for _, s := range secrets {
		for _, f := range redact.Forms(s) {
			for i := 0; i+echoPiece <= len(f); i++ {
				if strings.Contains(text, f[i:i+echoPiece]) {
					return true
				}
			}
		}
	}
	return false
}

// parseRetryAfter reads a Retry-After header (seconds or an HTTP date),
// bounded by MaxRetryAfter; 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		d = time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = at.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}
