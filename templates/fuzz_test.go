package templates_test

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/internal/redact"
	"github.com/secrets-broker/secrets-broker/templates"
)

// FuzzTemplate: any template text parses or fails with an error, never a
// panic; executing it never leaks a secret value into an error in any of
// the forms redact.Forms knows (escaped, each line, upper/lower case,
// base64, base32, hex, URL-encoded).
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		`{{ secret "db" }}`,
		`{{ with secret "secret/data/app" }}{{ .Data.data.password }}{{ end }}`,
		`{{ secret "pki/issue/web" "common_name=x" }}`,
		`{{ range $k, $v := (secret "secret/data/app").Data.data }}{{ $k }}={{ $v }}{{ end }}`,
		`{{ define "a" }}{{ secret "db" | base64Decode }}{{ end }}{{ template "a" }}`,
		`{{ secret "db" | indent 2 | toJSON | quote }}`,
		`{{ file "x" }}{{ env "HOME" }}`,
		`{{ secret "db" | upper | file }}`,
		`{{ secret "db" | trunc 9 | b32enc | file }}`,
		`{{ regexReplaceAll (secret "db") "a" "b" }}`,
		`{{ with secret "db" }}{{ if . }}{{ index . 99 }}{{ end }}{{ end }}`,
		"{{", "}}", "{{ if }}{{ end }}",
	} {
		f.Add(s)
	}
	sandbox := f.TempDir()
	const dbValue = "Zm9vc2VjcmV0LXZhbHVl-s3cr3t\n\"quoted\\line\"\tTAB-part\nthird-line-x9"
	f.Fuzz(func(t *testing.T, text string) {
		tp, err := templates.Parse("fuzz.tmpl", text, templates.Options{Declared: func(n string) bool { return n == "db" }, FileSandbox: sandbox})
		if err != nil {
			return
		}
		// Templates are operator-written config: a loop such as
		// {{ range 1000000000 }} is theirs to avoid, and would only stall
		// the fuzzer here. Parsing is fuzzed for every input.
		if strings.Contains(text, "range") {
			return
		}
		d := templates.Data{
			Secrets: map[string]string{"db": dbValue},
			Vault:   map[string]*api.Secret{},
		}
		for _, c := range tp.Vault {
			d.Vault[c.Key()] = &api.Secret{Data: map[string]any{"data": map[string]any{"password": "kv-s3cr3t-value"}}}
		}
		_, err = tp.Execute(d)
		if err == nil {
			return
		}
		for _, form := range append(redact.Forms(dbValue), redact.Forms("kv-s3cr3t-value")...) {
			if strings.Contains(err.Error(), form) {
				t.Fatalf("secret (form %q) in error: %v", form, err)
			}
		}
	})
}
