package envelope_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

var updateVectors = flag.Bool("update-vectors", false, "regenerate testdata/vectors.json (only when the format changes: v1 must not)")

// vector is one entry of testdata/vectors.json; docs/envelope.md describes
// the file for other implementations.
type vector struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Expect is "success", "format", "integrity" or "no-key".
	Expect    string            `json:"expect"`
	OpenAs    string            `json:"open_as,omitempty"`
	Context   map[string]string `json:"require_context,omitempty"`
	Plaintext string            `json:"plaintext_base64,omitempty"`
	Envelope  string            `json:"envelope"`
}

// vectorKey loads testdata/vector.key, a key published for tests only.
func vectorKey(t testing.TB) *local.Key {
	t.Helper()
	data, err := os.ReadFile("testdata/vector.key")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "vector.key")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := local.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVectors(t *testing.T) {
	if *updateVectors {
		writeVectors(t)
	}
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 10 {
		t.Fatalf("only %d vectors", len(vs))
	}
	k := vectorKey(t)
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			pt, err := openVector(k, v)
			switch v.Expect {
			case "success":
				want, _ := base64.StdEncoding.DecodeString(v.Plaintext)
				if err != nil || string(pt) != string(want) {
					t.Fatalf("want success, got %v", err)
				}
			case "format":
				wantKind(t, err, fail.Format)
			case "integrity":
				wantKind(t, err, fail.Integrity)
			case "no-key":
				wantKind(t, err, fail.KeyUnavailable)
			default:
				t.Fatalf("unknown expectation %q", v.Expect)
			}
		})
	}
}

func openVector(k *local.Key, v vector) ([]byte, error) {
	e, err := envelope.ParseText(v.Envelope)
	if err != nil {
		return nil, err
	}
	return e.Open(context.Background(), envelope.Expect{Name: v.OpenAs, Context: v.Context}, []envelope.KeyWrapper{k})
}

func writeVectors(t *testing.T) {
	ctx := context.Background()
	if _, err := os.Stat("testdata/vector.key"); err != nil {
		if err := local.Save("testdata/vector.key", []byte("secrets-broker test vector key!!")); err != nil {
			t.Fatal(err)
		}
	}
	k := vectorKey(t)
	other := local.Generate()
	seal := func(pt string, b envelope.Binding, w ...envelope.KeyWrapper) *envelope.Envelope {
		e, err := envelope.Seal(ctx, []byte(pt), b, w...)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	base := seal("hunter2", envelope.Binding{Name: "db_password", Context: map[string]string{"env": "prod"}}, k)
	vs := []vector{
		{Name: "ok-basic", Description: "one local stanza, name and context", Expect: "success", OpenAs: "db_password", Context: map[string]string{"env": "prod"}, Plaintext: b64("hunter2"), Envelope: base.String()},
		{Name: "ok-any-name", Description: "opened without naming the secret", Expect: "success", Plaintext: b64("hunter2"), Envelope: base.String()},
		{Name: "ok-empty", Description: "empty plaintext", Expect: "success", OpenAs: "empty", Plaintext: "", Envelope: seal("", envelope.Binding{Name: "empty"}, k).String()},
		{Name: "ok-two-stanzas", Description: "an unknown key first, then the vector key", Expect: "success", Plaintext: b64("multi\nline\n"), Envelope: seal("multi\nline\n", envelope.Binding{Name: "tls/key.pem"}, other, k).String()},
		{Name: "fail-wrong-name", Description: "valid envelope of another secret", Expect: "integrity", OpenAs: "api_key", Envelope: base.String()},
		{Name: "fail-wrong-context", Description: "required context missing", Expect: "integrity", Context: map[string]string{"env": "dev"}, Envelope: base.String()},
		{Name: "fail-wrong-key", Description: "wrapped only for a key the reader lacks", Expect: "no-key", Envelope: seal("x", envelope.Binding{Name: "x"}, other).String()},
	}
	mut := func(name, desc, expect string, f func(e *envelope.Envelope)) {
		e, _ := envelope.ParseText(base.String())
		f(e)
		vs = append(vs, vector{Name: name, Description: desc, Expect: expect, Envelope: e.String()})
	}
	mut("fail-renamed", "name in the header changed", "integrity", func(e *envelope.Envelope) { e.Name = "db_passwore" })
	mut("fail-context-edited", "context value changed", "integrity", func(e *envelope.Envelope) { e.Context = map[string]string{"env": "dev"} })
	mut("fail-created-edited", "created time changed", "integrity", func(e *envelope.Envelope) { e.Created = e.Created.Add(time.Second) })
	mut("fail-payload-flipped", "one ciphertext bit flipped", "integrity", func(e *envelope.Envelope) { e.Ciphertext[0] ^= 1 })
	mut("fail-tag-flipped", "one tag bit flipped", "integrity", func(e *envelope.Envelope) { e.Ciphertext[len(e.Ciphertext)-1] ^= 0x80 })
	mut("fail-nonce-flipped", "nonce changed", "integrity", func(e *envelope.Envelope) { e.Nonce[0] ^= 1 })
	mut("fail-commitment-flipped", "key commitment changed", "integrity", func(e *envelope.Envelope) { e.Commitment[5] ^= 1 })
	mut("fail-wrapped-key-flipped", "wrapped data key changed", "integrity", func(e *envelope.Envelope) { e.Stanzas[0].WrappedKey[20] ^= 1 })
	donor := seal("other", envelope.Binding{Name: "db_password", Context: map[string]string{"env": "prod"}}, k)
	mut("fail-stanza-swapped", "wrapped key taken from another envelope with the same binding", "integrity", func(e *envelope.Envelope) { e.Stanzas = donor.Stanzas })
	good := base.String()
	vs = append(vs,
		vector{Name: "fail-truncated", Description: "text form cut short", Expect: "format", Envelope: good[:len(good)-10]},
		vector{Name: "fail-bad-prefix", Description: "unknown version prefix", Expect: "format", Envelope: "sbe9:" + good[5:]},
		vector{Name: "fail-trailing", Description: "extra byte after the payload", Expect: "format", Envelope: appendByte(t, base)},
	)
	out, _ := json.MarshalIndent(vs, "", "  ")
	if err := os.WriteFile("testdata/vectors.json", append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendByte(t *testing.T, e *envelope.Envelope) string {
	bin := append(e.Marshal(), 0)
	return envelope.TextPrefix + base64.RawURLEncoding.EncodeToString(bin)
}
