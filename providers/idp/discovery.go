package idp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// maxDiscovery bounds a discovery document.
const maxDiscovery = 256 << 10

// discover reads the issuer's OpenID discovery document and returns its
// token endpoint, which must pass CheckURL as the issuer did. The document
// must name the configured issuer (OpenID Connect Discovery 4.3), so that
// a document served elsewhere is not taken for this issuer's.
func (c *Client) discover(ctx context.Context) (string, error) {
	what := "tokens." + c.src.Name
	issuer := strings.TrimSuffix(c.src.Issuer, "/")
	u := issuer + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fail.Mark(fail.Usage, fmt.Errorf("%s.issuer: %w", what, err))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fail.Mark(fail.Unavailable, fmt.Errorf("%s: discovery at %s: %w", what, u, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		kind := fail.NotFound
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			kind = fail.Unavailable
		}
		return "", fail.Mark(kind, fmt.Errorf("%s: discovery at %s answered HTTP %d; check issuer", what, u, resp.StatusCode))
	}
	body, err := readlimit.Bounded(resp.Body, maxDiscovery, what+": the discovery document")
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fail.Mark(fail.Format, fmt.Errorf("%s: discovery at %s is not a JSON document", what, u))
	}
	if strings.TrimSuffix(doc.Issuer, "/") != issuer {
		return "", fail.Mark(fail.Denied, fmt.Errorf("%s: the discovery document at %s names another issuer than the configured %s: refused", what, u, c.src.Issuer))
	}
	if doc.TokenEndpoint == "" {
		return "", fail.Mark(fail.Format, fmt.Errorf("%s: the discovery document at %s names no token_endpoint; set token_url instead", what, u))
	}
	if err := CheckURL(doc.TokenEndpoint, what+": the discovered token_endpoint"); err != nil {
		return "", err
	}
	if strings.HasPrefix(issuer, "https://") && !strings.HasPrefix(doc.TokenEndpoint, "https://") {
		// Plain http on loopback is for an issuer on loopback; an https
		// issuer never sends the credentials to a local port in the clear.
		return "", fail.Mark(fail.Denied, fmt.Errorf("%s: the discovery document at %s names a token_endpoint that is not https: refused", what, u))
	}
	return doc.TokenEndpoint, nil
}
