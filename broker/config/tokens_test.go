package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/providers/idp"
)

// The config refuses what would send credentials in the clear or put a
// secret in the config itself, naming the entry.
func TestTokenConfigIsChecked(t *testing.T) {
	for body, want := range map[string]string{
		"tokens:\n  api:\n    token_url: http://idp.example/token\n    client_id: c\n    client_secret: file:s\n":           "use https://",
		"tokens:\n  api:\n    token_url: https://idp.example/token\n    client_id: c\n    client_secret: hunter2-literal\n": "must be a secret reference",
		"tokens:\n  api:\n    token_url: https://idp.example/token\n    client_id: c\n":                                     "needs client_secret",
		"tokens:\n  api:\n    client_id: c\n    client_secret: file:s\n":                                                    "give issuer",
		"tokens:\n  api:\n    token_url: https://i/t\n    client_id: c\n    client_secret: file:s\n    auth: magic\n":       "auth \"magic\"",
		"secrets:\n  t: token:nope\n": "names no entry of tokens:",
		"secrets:\n  t: token:api#refresh_token\n" + "tokens:\n  api:\n    token_url: https://i/t\n    client_id: c\n    client_secret: file:s\n": "picks #refresh_token",
		"tokens:\n  api:\n    token_url: https://i/t\n    client_id: c\n    client_secret: file:s\n    params: {grant_type: password}\n":          "grant_type is set by the broker",
	} {
		_, err := config.Parse([]byte("output_root: o\n"+body), "c.yaml", t.TempDir())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error quotes a secret written into the config: %v", err)
		}
	}
}

// token: references, the credentials a tokens: entry is requested with,
// and the order entries are fetched in (a subject before its exchange).
func TestTokenReferencesCredentialsAndOrder(t *testing.T) {
	for in, want := range map[string][2]string{
		"token:api":            {"api", "access_token"},
		"token:api#expiry":     {"api", "expiry"},
		"token:api#token_type": {"api", "token_type"},
		"token:api#scope":      {"api", "scope"},
	} {
		r, err := config.ParseSecretRef(in)
		if err != nil || r.Scheme != "token" || r.Token != want[0] || r.TokenField != want[1] {
			t.Errorf("%s: %+v %v", in, r, err)
		}
	}
	for _, bad := range []string{"token:", "token:a/b", "token:api#refresh_token"} {
		if _, err := config.ParseSecretRef(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	cfg, err := config.Parse([]byte(`output_root: o
tokens:
  sts:
    token_url: https://sts.example/token
    client_id: vault:secret/data/idp#id
    auth: none
    exchange: {subject_token: "file:/var/run/secrets/tokens/sa"}
  orders:
    token_url: https://idp.example/token
    client_id: gateway
    client_secret: envelope:s.enc.yaml#gw
    exchange: {subject_token: "token:api"}
  api:
    issuer: https://idp.example
    client_id: svc
    auth: private_key_jwt
    private_key: file:/etc/idp/key.pem
secrets:
  t: token:orders
`), "c.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cfg.TokenCredentials() {
		got = append(got, c.Decl.Name+"="+c.Decl.Ref.String())
	}
	want := []string{
		"tokens/api/private_key=file:/etc/idp/key.pem",
		"tokens/orders/client_secret=envelope:s.enc.yaml#gw", "tokens/orders/subject_token=token:api",
		"tokens/sts/client_id=vault:secret/data/idp#id", "tokens/sts/subject_token=file:/var/run/secrets/tokens/sa",
	}
	if !slices.Equal(got, want) {
		t.Errorf("credentials:\n got %v\nwant %v", got, want)
	}
	if order := cfg.TokenOrder([]string{"orders", "sts"}); !slices.Equal(order, []string{"api", "orders", "sts"}) {
		t.Errorf("TokenOrder = %v: the subject api must come before orders", order)
	}
	if cfg.Tokens["orders"].Exchange.SubjectType() != idp.TokenTypeAccessToken || cfg.Tokens["sts"].Exchange.SubjectType() != idp.TokenTypeJWT {
		t.Error("subject token types do not default by the reference's kind")
	}
	if err := cfg.AddSecretFlags([]string{"T=token:api"}); err != nil {
		t.Errorf("--secret T=token:api with the entry declared: %v", err)
	}
	if err := cfg.AddSecretFlags([]string{"U=token:nope"}); err == nil || !strings.Contains(err.Error(), "names no entry of tokens:") {
		t.Errorf("--secret U=token:nope: %v", err)
	}
}
