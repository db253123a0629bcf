package templates_test

import (
	"encoding/base32"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/templates"
)

const pem = "-----BEGIN TEST KEY-----\nMIIBq\"uo\\te\tTAB-Zx81\nsecond-line-Qw7e\n-----END TEST KEY-----\n"

// leaks lists the forms of pem an error could carry: Go-escaped, each
// line (escaped too), upper case, a truncated prefix, unpadded base64,
// base32.
func leaks() []string {
	q := strconv.Quote(pem)
	lines := []string{"MIIBq\"uo\\te\tTAB-Zx81", "second-line-Qw7e"}
	out := []string{q[1 : len(q)-1], strings.ToUpper(lines[1]), "MIIBq", "second-line", "cW7E",
		strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(pem)), "=")[:40],
		base32.StdEncoding.EncodeToString([]byte(pem))[:40]}
	for _, l := range lines {
		lq := strconv.Quote(l)
		out = append(out, l, lq[1:len(lq)-1])
	}
	return out
}

// Values reach errors escaped, transformed, truncated or line by line
// through functions that quote their arguments, panics in regexp helpers
// and text/template's own range/if messages. None of it may show.
func TestErrorsNeverCarryAnyFormOfASecret(t *testing.T) {
	sandbox := t.TempDir()
	os.WriteFile(filepath.Join(sandbox, "ok.txt"), []byte("ok"), 0o600)
	cases := map[string]string{
		"file-escaped":    `{{ secret "pem" | file }}`,
		"file-upper":      `{{ secret "pem" | upper | file }}`,
		"file-trunc":      `{{ secret "pem" | trunc 30 | file }}`,
		"file-b64-nopad":  `{{ secret "pem" | b64enc | trimSuffix "=" | trimSuffix "=" | file }}`,
		"file-b32":        `{{ secret "pem" | b32enc | file }}`,
		"file-one-line":   `{{ secret "pem" | splitList "\n" | last | printf "%s%s" (index (secret "pem" | splitList "\n") 2) | file }}`,
		"regexp-panic":    `{{ regexReplaceAll (secret "pem" | upper) "x" "y" }}`,
		"range-value":     `{{ range secret "pem" | trunc 40 }}{{ end }}`,
		"if-value":        `{{ with $x := secret "pem" | lower | splitList "\n" }}{{ if (index $x 1 | len | eq 0) }}{{ end }}{{ range (index $x 2) }}{{ end }}{{ end }}`,
		"toYAML-of-value": `{{ toJSON (secret "pem" | splitList "\n") | parse }}`,
	}
	for name, text := range cases {
		t.Run(name, func(t *testing.T) {
			tp, err := templates.Parse("t.tmpl", "first line\n"+text, templates.Options{Declared: declared("pem"), FileSandbox: sandbox})
			if err != nil {
				if name == "toYAML-of-value" {
					return // parse is not a function: refused before any value exists
				}
				t.Fatal(err)
			}
			_, err = tp.Execute(templates.Data{Secrets: map[string]string{"pem": pem}})
			if err == nil {
				t.Fatal("want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, "t.tmpl:2") {
				t.Errorf("error does not name the template and line: %s", msg)
			}
			for _, l := range leaks() {
				if strings.Contains(msg, l) || strings.Contains(strings.ToLower(msg), strings.ToLower(l)) && len(l) >= 8 {
					t.Errorf("error carries %q: %s", l, msg)
				}
			}
		})
	}
}

func TestFunctionErrorsNameTheFunction(t *testing.T) {
	tp, err := templates.Parse("t.tmpl", `{{ secret "db" | base64Decode }}`, templates.Options{Declared: declared("db")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tp.Execute(templates.Data{Secrets: map[string]string{"db": "not base64!"}})
	if err == nil || !strings.Contains(err.Error(), "error calling base64Decode: the input is not valid base64") {
		t.Fatalf("error %v", err)
	}
	tp, _ = templates.Parse("t.tmpl", `{{ index (list 1) 5 }}`, templates.Options{})
	if _, err = tp.Execute(templates.Data{}); err == nil || !strings.Contains(err.Error(), "index out of range: 5") {
		t.Fatalf("builtin error %v", err)
	}
}
