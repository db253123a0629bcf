package envelope_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

func vectorSeeds(f *testing.F) []string {
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(data, &vs); err != nil {
		f.Fatal(err)
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Envelope
	}
	return out
}

// FuzzParseText: any input parses to a canonical envelope or fails with a
// format error; opening never panics. Seeds: testdata/fuzz/FuzzParseText and
// every vector.
func FuzzParseText(f *testing.F) {
	for _, s := range vectorSeeds(f) {
		f.Add(s)
	}
	k := vectorKey(f)
	f.Fuzz(func(t *testing.T, text string) {
		e, err := envelope.ParseText(text)
		if err != nil {
			if fail.KindOf(err) != fail.Format {
				t.Fatalf("parse error of class %s: %v", fail.KindOf(err), err)
			}
			return
		}
		again, err := envelope.Parse(e.Marshal())
		if err != nil || !bytes.Equal(again.Marshal(), e.Marshal()) {
			t.Fatalf("not canonical: %v", err)
		}
		_, _ = e.Open(context.Background(), envelope.Expect{}, []envelope.KeyWrapper{k})
	})
}

// FuzzParseFile: secrets files never panic the parser, and whatever parses
// marshals back to a file that parses the same way.
func FuzzParseFile(f *testing.F) {
	seeds := vectorSeeds(f)
	f.Add([]byte("version: 1\nentries:\n  a: " + seeds[0] + "\nintegrity: " + seeds[1] + "\n"))
	f.Add([]byte(`{"version": 1, "entries": {"a": "` + seeds[0] + `"}, "integrity": "x"}`))
	f.Add([]byte("version: 1\nentries: {}\nintegrity: sbe1:\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := envelope.ParseFile(data, "fuzz.yaml")
		if err != nil {
			if k := fail.KindOf(err); k != fail.Format && k != fail.Integrity {
				t.Fatalf("parse error of class %s: %v", k, err)
			}
			return
		}
		p2, err := envelope.ParseFile(p.MarshalYAML(), "fuzz.yaml")
		if err != nil || len(p2.Entries) != len(p.Entries) {
			t.Fatalf("re-marshalled file does not parse the same: %v", err)
		}
	})
}
