package templates_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/templates"
)

func declared(names ...string) func(string) bool {
	return func(n string) bool {
		for _, x := range names {
			if x == n {
				return true
			}
		}
		return false
	}
}

func kv2(data map[string]any) *api.Secret {
	return &api.Secret{Data: map[string]any{"data": data, "metadata": map[string]any{"version": 3}}}
}

func TestDiscoversNeedsAndRenders(t *testing.T) {
	text := `db={{ secret "db_password" }}
{{ with secret "secret/data/app" }}user={{ .Data.data.user }} pw={{ .Data.data.password | base64Encode }}{{ end }}
{{ with secret "pki/issue/web" "common_name=a.example.com" "ttl=1h" }}{{ .Data.certificate }}{{ end }}
{{ if true }}{{ secret "api_key" | quote }}{{ end }}{{ range $i, $x := list 1 2 }}{{ secret "secret/data/app" | toJSON | len }}{{ end }}
{{ define "x" }}{{ secret "other/path" }}{{ end }}`
	tp, err := templates.Parse("app.tmpl", text, templates.Options{Declared: declared("db_password", "api_key")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tp.Secrets, ",") != "api_key,db_password" {
		t.Fatalf("secrets %v", tp.Secrets)
	}
	var keys []string
	for _, c := range tp.Vault {
		keys = append(keys, c.Key())
	}
	if strings.Join(keys, ",") != "other/path,pki/issue/web?common_name=a.example.com&ttl=1h,secret/data/app" {
		t.Fatalf("vault calls %v", keys)
	}
	out, err := tp.Execute(templates.Data{
		Secrets: map[string]string{"db_password": "pw1", "api_key": `a"b`},
		Vault: map[string]*api.Secret{
			"secret/data/app": kv2(map[string]any{"user": "app", "password": "hunter2"}),
			"pki/issue/web?common_name=a.example.com&ttl=1h": {Data: map[string]any{"certificate": "CERT"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "db=pw1\nuser=app pw=aHVudGVyMg==\nCERT\n\"a\\\"b\""
	if !strings.HasPrefix(string(out), want) {
		t.Fatalf("got %q", out)
	}
}

func TestParseErrorsNameTemplateAndLine(t *testing.T) {
	cases := map[string]string{
		"a\n{{ secret \"nope\" }}":          "app.tmpl:2",
		"a\nb\n{{ secrets \"x/y\" \"z\" }}": "app.tmpl:3",
		`{{ sprig_randInt 1 9 }}`:           "sprig_randInt is outside the vetted Sprig subset",
		"{{ secret \"nope\" }}":             "neither a declared secret nor a Vault path",
		"{{ secret \"a/b\" \"novalue\" }}":  "KEY=VALUE",
		"{{ if }}":                          "app.tmpl:1",
		"{{ nosuchfunc }}":                  `function "nosuchfunc" not defined`,
		`{{ env "HOME" | expandenv }}`:      `"expandenv" not defined`,
		`{{ getHostByName "example.com" }}`: `"getHostByName" not defined`,
	}
	for text, want := range cases {
		_, err := templates.Parse("app.tmpl", text, templates.Options{})
		if err == nil || !strings.Contains(err.Error(), want) || fail.KindOf(err) != fail.Usage {
			t.Errorf("Parse(%q) = %v, want %q", text, err, want)
		} else if n := strings.Count(err.Error(), "app.tmpl"); n != 1 {
			t.Errorf("Parse(%q) = %v: names the template %d times, want once", text, err, n)
		}
	}
}

// CVE-2022-38149 and consul-template GH-2184: secret values, KV v2 nested
// ones included, never appear in template errors.
func TestErrorsRedactSecrets(t *testing.T) {
	text := "line1\n{{ secret \"db\" | base64Decode }}"
	tp, err := templates.Parse("t.tmpl", text, templates.Options{Declared: declared("db")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = tp.Execute(templates.Data{Secrets: map[string]string{"db": "not base64 s3cr3t!"}})
	if err == nil || !strings.Contains(err.Error(), "t.tmpl:2") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %v", err)
	}
	// A KV v2 value reaching an error through a function that quotes its input.
	tp, _ = templates.Parse("kv.tmpl", `{{ with secret "secret/data/app" }}{{ .Data.data.password | atoi | add 1 }}{{ index .Data.data.nested "x" | printf "%d" | regexReplaceAll "(" "" }}{{ end }}`, templates.Options{})
	_, err = tp.Execute(templates.Data{Vault: map[string]*api.Secret{"secret/data/app": kv2(map[string]any{"password": "hunter2", "nested": map[string]any{"x": "deep-s3cret"}})}})
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Contains(err.Error(), "deep-s3cret") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("secret in error: %v", err)
	}
	// missingkey=error names the key, not values.
	tp, _ = templates.Parse("m.tmpl", "{{ with secret \"secret/data/app\" }}{{ .Data.data.pasword }}{{ end }}", templates.Options{})
	_, err = tp.Execute(templates.Data{Vault: map[string]*api.Secret{"secret/data/app": kv2(map[string]any{"password": "hunter2"})}})
	if err == nil || !strings.Contains(err.Error(), "pasword") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("missing key: %v", err)
	}
	if got := templates.Redact("x hunter2 aHVudGVyMg== y", templates.Data{Secrets: map[string]string{"a": "hunter2"}}); got != "x [redacted] [redacted] y" {
		t.Fatalf("Redact = %q", got)
	}
}

// consul-template GH-2083/GH-2143: the file function reads only beneath its
// sandbox: no .., no absolute path, no leading whitespace trick, no symlink
// out, even one re-pointed after parsing.
func TestFileSandbox(t *testing.T) {
	sandbox := t.TempDir()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(sandbox, "ok.txt"), []byte("inside"), 0o600)
	os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("outside"), 0o600)
	os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(sandbox, "link.txt"))
	os.Symlink("ok.txt", filepath.Join(sandbox, "inner-link.txt"))
	render := func(name string) (string, error) {
		tp, err := templates.Parse("f.tmpl", `{{ file "`+name+`" }}`, templates.Options{FileSandbox: sandbox})
		if err != nil {
			return "", err
		}
		out, err := tp.Execute(templates.Data{})
		return string(out), err
	}
	if got, err := render("ok.txt"); err != nil || got != "inside" {
		t.Fatalf("ok.txt: %q %v", got, err)
	}
	if got, err := render("inner-link.txt"); err != nil || got != "inside" {
		t.Fatalf("inner link: %q %v", got, err)
	}
	for _, bad := range []string{"../" + filepath.Base(outside) + "/secret.txt", filepath.Join(outside, "secret.txt"), " " + filepath.Join(outside, "secret.txt"), "link.txt"} {
		got, err := render(bad)
		if err == nil || strings.Contains(got, "outside") {
			t.Errorf("file %q escaped the sandbox: %q %v", bad, got, err)
		}
	}
	// Re-point an inner link to the outside after parsing.
	tp, _ := templates.Parse("f.tmpl", `{{ file "inner-link.txt" }}`, templates.Options{FileSandbox: sandbox})
	os.Remove(filepath.Join(sandbox, "inner-link.txt"))
	os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(sandbox, "inner-link.txt"))
	if out, err := tp.Execute(templates.Data{}); err == nil || strings.Contains(string(out), "outside") {
		t.Fatalf("re-pointed link escaped: %q %v", out, err)
	}
	// Disabled without a sandbox.
	tp, _ = templates.Parse("f.tmpl", `{{ file "ok.txt" }}`, templates.Options{})
	if _, err := tp.Execute(templates.Data{}); err == nil || !strings.Contains(err.Error(), "file_sandbox") {
		t.Fatalf("file without sandbox: %v", err)
	}
}

func TestHelpers(t *testing.T) {
	t.Setenv("APP_REGION", "eu")
	t.Setenv("VAULT_TOKEN", "hvs.broker-token")
	tp, err := templates.Parse("h.tmpl", `{{ env "APP_REGION" }}|{{ secret "s" | shellQuote }}|{{ indent 2 "a\nb" }}|{{ dict "k" "v" | toYAML }}|{{ "a/b?c" | base64URLEncode }}|{{ secret "s" | toJSON }}`, templates.Options{Declared: declared("s")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tp.Execute(templates.Data{Secrets: map[string]string{"s": "it's"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `eu|'it'\''s'|  a
  b|k: v|YS9iP2M=|"it's"` {
		t.Fatalf("got %q", out)
	}
	tp, _ = templates.Parse("h.tmpl", `{{ env "VAULT_TOKEN" }}`, templates.Options{})
	if _, err := tp.Execute(templates.Data{}); err == nil {
		t.Fatal("env handed the broker's VAULT_TOKEN to a template")
	}
}

// Custom delimiters (consul-template's left_delimiter/right_delimiter):
// {{ }} is then plain text, and calls use the new delimiters.
func TestCustomDelimiters(t *testing.T) {
	tp, err := templates.Parse("d", `[[ with secret "secret/data/app" ]]pw=[[ .Data.data.password ]] {{ not a call }}[[ end ]]`, templates.Options{LeftDelim: "[[", RightDelim: "]]"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tp.Vault) != 1 || tp.Vault[0].Path != "secret/data/app" {
		t.Fatalf("calls found: %+v", tp.Vault)
	}
}
