package awskms_test

import (
	"flag"
	"maps"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/testvectors"
	"github.com/secrets-broker/secrets-broker/providers/awskms"
)

var updateVectors = flag.Bool("update-vectors", false, "regenerate testdata/encryption-context.json")

// ecVector is a binding and the KMS encryption context it is sent as
// (docs/envelope.md, "AWS KMS").
type ecVector struct {
	Name              string            `json:"name"`
	Context           map[string]string `json:"context,omitempty"`
	EncryptionContext map[string]string `json:"encryption_context"`
}

func TestEncryptionContextVectors(t *testing.T) {
	vs := testvectors.Load(t, "testdata/encryption-context.json", *updateVectors, 4, func() []ecVector {
		var vs []ecVector
		for _, b := range []envelope.Binding{
			{Name: "db_password"},
			{Name: "db_password", Context: map[string]string{"env": "prod"}},
			{Name: "tls/key.pem", Context: map[string]string{"env": "prod", "app": "billing"}},
			{Name: envelope.ManifestName, Context: map[string]string{"env": "staging"}},
		} {
			vs = append(vs, ecVector{Name: b.Name, Context: b.Context, EncryptionContext: awskms.EncryptionContext(b)})
		}
		return vs
	})
	for _, v := range vs {
		got := awskms.EncryptionContext(envelope.Binding{Name: v.Name, Context: v.Context})
		if !maps.Equal(got, v.EncryptionContext) {
			t.Errorf("%s: encryption context %v, want %v", v.Name, got, v.EncryptionContext)
		}
		if got[awskms.FormatContextKey] != "sbe1" || got[awskms.NameContextKey] != v.Name {
			t.Errorf("%s: no format label or name in %v", v.Name, got)
		}
	}
}
