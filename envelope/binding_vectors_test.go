package envelope_test

import (
	"encoding/hex"
	"flag"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/testvectors"
)

var updateBindingVectors = flag.Bool("update-binding-vectors", false, "regenerate testdata/binding-vectors.json")

// BindingVector is one binding and its canonical encoding, the associated
// data every key wrapper authenticates (docs/envelope.md, "Binding").
type bindingVector struct {
	Name         string            `json:"name"`
	Context      map[string]string `json:"context,omitempty"`
	CanonicalHex string            `json:"canonical_hex"`
}

// VectorBindings are the bindings the binding, KMS and Transit vectors use.
var vectorBindings = []envelope.Binding{
	{Name: "db_password"},
	{Name: "db_password", Context: map[string]string{"env": "prod"}},
	{Name: "tls/key.pem", Context: map[string]string{"env": "prod", "app": "billing", "region": "eu-west-1"}},
	{Name: envelope.ManifestName, Context: map[string]string{"env": "staging"}},
	{Name: "x", Context: map[string]string{"note": "ünïcödé value with spaces"}},
}

func TestBindingVectors(t *testing.T) {
	vs := testvectors.Load(t, "testdata/binding-vectors.json", *updateBindingVectors, 5, func() []bindingVector {
		var vs []bindingVector
		for _, b := range vectorBindings {
			vs = append(vs, bindingVector{Name: b.Name, Context: b.Context, CanonicalHex: hex.EncodeToString(b.Canonical())})
		}
		return vs
	})
	for _, v := range vs {
		got := hex.EncodeToString(envelope.Binding{Name: v.Name, Context: v.Context}.Canonical())
		if got != v.CanonicalHex {
			t.Errorf("%s %v: canonical %s, want %s", v.Name, v.Context, got, v.CanonicalHex)
		}
	}
}
