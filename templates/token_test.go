package templates_test

import (
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/providers/idp"
	"github.com/secrets-broker/secrets-broker/templates"
)

// `token "NAME"` needs a literal name of a tokens: entry, known at parse;
// it renders the token's fields, and an error of the template never shows
// the access token.
func TestTokenFunction(t *testing.T) {
	hasToken := func(n string) bool { return n == "api" }
	opts := templates.Options{Token: hasToken}
	tp, err := templates.Parse("t", `{{ with token "api" }}{{ .TokenType }} {{ .AccessToken }} {{ .Expiry.Unix }}{{ end }}`, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(tp.Tokens) != 1 || tp.Tokens[0] != "api" {
		t.Fatalf("Tokens = %v", tp.Tokens)
	}
	tok := &idp.Token{AccessToken: "at-Zq81-access-token", TokenType: "Bearer", Expiry: time.Unix(1700000000, 0)}
	out, err := tp.Execute(templates.Data{Tokens: map[string]*idp.Token{"api": tok}})
	if err != nil || string(out) != "Bearer at-Zq81-access-token 1700000000" {
		t.Fatalf("rendered %q, %v", out, err)
	}
	if _, err := tp.Execute(templates.Data{}); err == nil || !strings.Contains(err.Error(), "has not been fetched") {
		t.Errorf("a token not fetched: %v", err)
	}
	leak, err := templates.Parse("leak", `{{ with token "api" }}{{ index .AccessToken 99 }}{{ end }}`, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leak.Execute(templates.Data{Tokens: map[string]*idp.Token{"api": tok}}); err == nil || strings.Contains(err.Error(), tok.AccessToken) {
		t.Errorf("a template error shows the token: %v", err)
	}
	for text, want := range map[string]string{
		`{{ token "nope" }}`:        `token "nope" names no entry of tokens:`,
		`{{ token (printf "a") }}`:  "quoted string",
		`{{ token "api" "extra" }}`: "quoted string",
	} {
		if _, err := templates.Parse("bad", text, opts); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "bad:1") {
			t.Errorf("%s: %v, want %q with its line", text, err, want)
		}
	}
}
