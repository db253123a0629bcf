// Package ststest owns a stand-in for AWS STS's GetCallerIdentity on a
// loopback port, for tests of Vault's aws auth method (IAM type): the real
// STS is unreachable here. Vault forwards the broker's signed request to
// it; it checks the SigV4 signature with the secret keys it was given,
// exactly as STS would for the parts Vault relies on (the signature over
// method, path, body and signed headers, the credential scope), and answers
// with the caller's ARN in STS's XML.
package ststest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Identity is one set of AWS credentials and whom they name.
type Identity struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	// ARN is what GetCallerIdentity answers, e.g.
	// arn:aws:sts::123456789012:assumed-role/web/i-0abc.
	ARN, UserID, Account string
}

// Server is the stand-in.
type Server struct {
	URL string // http://127.0.0.1:PORT

	mu       sync.Mutex
	ids      map[string]Identity
	calls    int
	rejected []string // why each refused request was refused
}

// Start serves until the test ends.
func Start(t testing.TB, ids ...Identity) *Server {
	t.Helper()
	s := &Server{ids: map[string]Identity{}}
	for _, id := range ids {
		s.ids[id.AccessKeyID] = id
	}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	s.URL = hs.URL
	return s
}

// Calls is how many requests reached it.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Rejected lists why requests were refused.
func (s *Server) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	id, why := s.verify(r, body)
	if why != "" {
		s.mu.Lock()
		s.rejected = append(s.rejected, why)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>%s</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>`, why)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>%s</Arn><UserId>%s</UserId><Account>%s</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000001</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
		id.ARN, id.UserID, id.Account)
}

// verify signs the request again with the named key's secret and compares.
func (s *Server) verify(r *http.Request, body []byte) (Identity, string) {
	if r.Method != http.MethodPost {
		return Identity{}, "method " + r.Method + " is not POST"
	}
	if string(body) != "Action=GetCallerIdentity&Version=2011-06-15" {
		return Identity{}, "the body is not GetCallerIdentity"
	}
	auth := r.Header.Get("Authorization")
	const algo = "AWS4-HMAC-SHA256 Credential="
	if !strings.HasPrefix(auth, algo) {
		return Identity{}, "no SigV4 Authorization header"
	}
	scope := strings.SplitN(strings.TrimPrefix(auth, algo), ",", 2)[0]
	parts := strings.Split(scope, "/") // AKID/date/region/sts/aws4_request
	if len(parts) != 5 || parts[3] != "sts" || parts[4] != "aws4_request" {
		return Identity{}, "the credential scope is not for sts"
	}
	s.mu.Lock()
	id, ok := s.ids[parts[0]]
	s.mu.Unlock()
	if !ok {
		return Identity{}, "unknown access key"
	}
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || time.Since(when).Abs() > 15*time.Minute {
		return Identity{}, "X-Amz-Date missing or more than 15 minutes off"
	}
	signed := ""
	if i := strings.Index(auth, "SignedHeaders="); i >= 0 {
		signed = strings.SplitN(auth[i+len("SignedHeaders="):], ",", 2)[0]
	}
	// STS, like every AWS service but S3, normalizes the path before it
	// checks the signature (Vault sends "//" for "/").
	uri := path.Clean("/" + r.URL.Path)
	if r.URL.RawQuery != "" {
		uri += "?" + r.URL.RawQuery
	}
	again, _ := http.NewRequest(http.MethodPost, "https://"+r.Host+uri, bytes.NewReader(body))
	for _, h := range strings.Split(signed, ";") {
		switch h {
		case "host", "x-amz-date", "x-amz-security-token", "content-length":
		default:
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: id.AccessKeyID, SecretAccessKey: id.SecretAccessKey, SessionToken: id.SessionToken}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, again, hex.EncodeToString(sum[:]), "sts", parts[2], when); err != nil {
		return Identity{}, "cannot sign: " + err.Error()
	}
	if again.Header.Get("Authorization") != auth {
		return Identity{}, "the signature does not match"
	}
	return id, ""
}
