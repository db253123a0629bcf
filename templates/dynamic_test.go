package templates_test

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/templates"
)

// A template whose secret paths are computed is Dynamic: rendering it finds
// what it reads, one level at a time, as consul-template does.
func TestDiscoverFindsComputedPathsLevelByLevel(t *testing.T) {
	text := `{{ range secrets "secret/metadata/services/" }}{{ with secret (printf "secret/data/services/%s" .) }}{{ .Data.data.host }}{{ with secret (printf "secret/data/owners/%s" .Data.data.owner) }}/{{ .Data.data.name }}{{ end }};{{ end }}{{ end }}`
	tp, err := templates.Parse("t.tmpl", text, templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !tp.Dynamic || len(tp.Vault) != 1 || !tp.Vault[0].List || tp.Vault[0].Key() != "LIST secret/metadata/services" {
		t.Fatalf("Dynamic %v, static calls %+v: want dynamic with the one literal LIST", tp.Dynamic, tp.Vault)
	}
	vault := map[string]*api.Secret{}
	if got := tp.Discover(templates.Data{Vault: vault}); len(got) != 1 || got[0].Key() != "LIST secret/metadata/services" || got[0].Computed {
		t.Fatalf("pass 1 found %+v; want the literal LIST, not marked Computed", got)
	}
	vault["LIST secret/metadata/services"] = &api.Secret{Data: map[string]any{"keys": []any{"web", "api"}}}
	got := tp.Discover(templates.Data{Vault: vault})
	if len(got) != 2 || got[0].Key() != "secret/data/services/api" || got[1].Key() != "secret/data/services/web" || !got[0].Computed || !got[1].Computed {
		t.Fatalf("pass 2 found %+v; want both marked Computed (their paths come from a listing)", got)
	}
	vault["secret/data/services/api"] = kv2(map[string]any{"host": "api.internal", "owner": "ops"})
	vault["secret/data/services/web"] = kv2(map[string]any{"host": "web.internal", "owner": "web-team"})
	got = tp.Discover(templates.Data{Vault: vault})
	if len(got) != 2 || got[0].Key() != "secret/data/owners/ops" {
		t.Fatalf("pass 3 found %+v", got)
	}
	vault["secret/data/owners/ops"] = kv2(map[string]any{"name": "Ops"})
	vault["secret/data/owners/web-team"] = kv2(map[string]any{"name": "Web"})
	if got := tp.Discover(templates.Data{Vault: vault}); len(got) != 0 {
		t.Fatalf("pass 4 found %+v; want nothing more", got)
	}
	out, err := tp.Execute(templates.Data{Vault: vault})
	if err != nil || string(out) != "api.internal/Ops;web.internal/Web;" {
		t.Fatalf("rendered %q, %v", out, err)
	}
	// Rendering (not discovering) with a path missing is an error naming it.
	delete(vault, "secret/data/owners/ops")
	if _, err := tp.Execute(templates.Data{Vault: vault}); err == nil || !strings.Contains(err.Error(), `secret (printf "secret/data/owners/%s" .Data.data.owner)>: error calling secret: this call's Vault path was not fetched`) {
		t.Fatalf("want a not-fetched error, got %v", err)
	}
}

// pkiCert gives consul-template's fields; toTOML and the sprig_ names
// behave as there.
func TestPKICertToTOMLAndSprigNames(t *testing.T) {
	text := `{{ with pkiCert "pki/issue/web" "common_name=a.example.com" }}{{ .Cert }}|{{ .Key }}|{{ .CA }}|{{ len .CAChain }}{{ end }}
{{ parseJSON "{\"a\":1,\"b\":{\"c\":\"d\"}}" | toTOML }}
{{ sprig_upper "x" }} {{ sprig_list "b" "a" | sprig_sortAlpha | sprig_join "," }}`
	tp, err := templates.Parse("t.tmpl", text, templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tp.Dynamic || len(tp.Vault) != 1 || tp.Vault[0].Key() != "pki/issue/web?common_name=a.example.com" {
		t.Fatalf("static calls %+v", tp.Vault)
	}
	out, err := tp.Execute(templates.Data{Vault: map[string]*api.Secret{"pki/issue/web?common_name=a.example.com": {Data: map[string]any{
		"certificate": "CERT", "private_key": "KEY", "issuing_ca": "CA", "ca_chain": []any{"CA"}}}}})
	want := "CERT|KEY|CA|1\na = 1.0\n\n[b]\n  c = \"d\"\nX a,b"
	if err != nil || string(out) != want {
		t.Fatalf("got %q, %v; want %q", out, err, want)
	}
}
