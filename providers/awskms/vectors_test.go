package awskms_test

import (
	"encoding/json"
	"flag"
	"maps"
	"os"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
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
	if *updateVectors {
		var vs []ecVector
		for _, b := range []envelope.Binding{
			{Name: "db_password"},
			{Name: "db_password", Context: map[string]string{"env": "prod"}},
			{Name: "tls/key.pem", Context: map[string]string{"env": "prod", "app": "billing"}},
			{Name: envelope.ManifestName, Context: map[string]string{"env": "staging"}},
		} {
			vs = append(vs, ecVector{Name: b.Name, Context: b.Context, EncryptionContext: awskms.EncryptionContext(b)})
		}
		out, _ := json.MarshalIndent(vs, "", "  ")
		os.WriteFile("testdata/encryption-context.json", append(out, '\n'), 0o644)
	}
	data, err := os.ReadFile("testdata/encryption-context.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []ecVector
	if err := json.Unmarshal(data, &vs); err != nil || len(vs) < 4 {
		t.Fatalf("vectors: %v (%d)", err, len(vs))
	}
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
