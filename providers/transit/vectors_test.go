package transit_test

import (
	"flag"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/testvectors"
	"github.com/secrets-broker/secrets-broker/providers/transit"
)

var updateVectors = flag.Bool("update-vectors", false, "regenerate testdata/associated-data.json")

// adVector is a binding and the associated_data Transit receives for it
// (docs/envelope.md, "Vault Transit").
type adVector struct {
	Name           string            `json:"name"`
	Context        map[string]string `json:"context,omitempty"`
	AssociatedData string            `json:"associated_data"`
}

func TestAssociatedDataVectors(t *testing.T) {
	vs := testvectors.Load(t, "testdata/associated-data.json", *updateVectors, 4, func() []adVector {
		var vs []adVector
		for _, b := range []envelope.Binding{
			{Name: "db_password"},
			{Name: "db_password", Context: map[string]string{"env": "prod"}},
			{Name: "tls/key.pem", Context: map[string]string{"env": "prod", "app": "billing"}},
			{Name: envelope.ManifestName, Context: map[string]string{"env": "staging"}},
		} {
			vs = append(vs, adVector{Name: b.Name, Context: b.Context, AssociatedData: transit.AssociatedData(b)})
		}
		return vs
	})
	for _, v := range vs {
		if got := transit.AssociatedData(envelope.Binding{Name: v.Name, Context: v.Context}); got != v.AssociatedData {
			t.Errorf("%s: associated_data %s, want %s", v.Name, got, v.AssociatedData)
		}
	}
}
