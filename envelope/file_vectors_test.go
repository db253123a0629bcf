package envelope_test

import (
	"context"
	"encoding/base64"
	"flag"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/testvectors"
)

var updateFileVectors = flag.Bool("update-file-vectors", false, "regenerate testdata/file-vectors.json")

// fileVector is one secrets file (YAML or JSON text) with what a reader
// holding testdata/vector.key must get from it: every entry (success) or a
// class of failure. RequireContext is the file-level context the reader
// requires of the manifest and every entry.
type fileVector struct {
	Name           string            `json:"name"`
	Description    string            `json:"description"`
	Expect         string            `json:"expect"`
	RequireContext map[string]string `json:"require_context,omitempty"`
	// Entries are name -> base64 plaintext, in order, for "success".
	Entries []fileVectorEntry `json:"entries,omitempty"`
	File    string            `json:"file"`
}

type fileVectorEntry struct {
	Name      string `json:"name"`
	Plaintext string `json:"plaintext_base64"`
}

func TestFileVectors(t *testing.T) {
	vs := testvectors.Load(t, "testdata/file-vectors.json", *updateFileVectors, 8, func() []fileVector { return makeFileVectors(t) })
	k := vectorKey(t)
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			var got []envelope.Plain
			f, err := envelope.ParseFile([]byte(v.File), v.Name)
			if err == nil {
				got, err = f.OpenAll(context.Background(), envelope.FileExpect{Context: v.RequireContext}, keys(k), 2)
			}
			switch v.Expect {
			case "success":
				if err != nil || len(got) != len(v.Entries) {
					t.Fatalf("want %d entries, got %d: %v", len(v.Entries), len(got), err)
				}
				for i, e := range v.Entries {
					if got[i].Name != e.Name || base64.StdEncoding.EncodeToString(got[i].Value) != e.Plaintext {
						t.Fatalf("entry %d: got %q", i, got[i].Name)
					}
				}
			case "format":
				wantKind(t, err, fail.Format)
			case "integrity":
				wantKind(t, err, fail.Integrity)
			default:
				t.Fatalf("unknown expectation %q", v.Expect)
			}
		})
	}
}

func makeFileVectors(t *testing.T) []fileVector {
	ctx := context.Background()
	k := vectorKey(t)
	plain := []envelope.Plain{{Name: "db_password", Value: []byte("hunter2")}, {Name: "api_key", Value: []byte("key-1")}, {Name: "tls/key.pem", Value: []byte("-----BEGIN-----\nMIIB\n-----END-----\n")}}
	prodCtx := map[string]string{"env": "prod"}
	seal := func(values []envelope.Plain, c map[string]string) *envelope.File {
		f, err := envelope.SealFile(ctx, values, c, k)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	entries := func(values []envelope.Plain) []fileVectorEntry {
		var out []fileVectorEntry
		for _, p := range values {
			out = append(out, fileVectorEntry{Name: p.Name, Plaintext: base64.StdEncoding.EncodeToString(p.Value)})
		}
		return out
	}
	prod := seal(plain, prodCtx)
	staging := seal(plain, map[string]string{"env": "staging"})
	other := seal(plain, prodCtx)
	js, _ := prod.MarshalJSON()
	vs := []fileVector{
		{Name: "ok-yaml", Description: "three entries, file context env=prod, read requiring it", Expect: "success", RequireContext: prodCtx, Entries: entries(plain), File: string(prod.MarshalYAML())},
		{Name: "ok-json", Description: "the same file in JSON", Expect: "success", RequireContext: prodCtx, Entries: entries(plain), File: string(js)},
		{Name: "ok-no-requirement", Description: "read without requiring a context", Expect: "success", Entries: entries(plain), File: string(prod.MarshalYAML())},
		{Name: "fail-staging-as-prod", Description: "a valid staging file where prod is required", Expect: "integrity", RequireContext: prodCtx, File: string(staging.MarshalYAML())},
	}
	// Edit the YAML text of prod as an attacker with write access would.
	lines := strings.Split(string(prod.MarshalYAML()), "\n")
	find := func(prefix string) int {
		for i, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return i
			}
		}
		t.Fatalf("no line %q", prefix)
		return -1
	}
	edit := func(name, desc, expect string, f func(ls []string) []string) {
		ls := f(append([]string(nil), lines...))
		vs = append(vs, fileVector{Name: name, Description: desc, Expect: expect, RequireContext: prodCtx, File: strings.Join(ls, "\n")})
	}
	db, api := find("  db_password: "), find("  api_key: ")
	edit("fail-entry-removed", "one entry deleted", "integrity", func(ls []string) []string { return append(ls[:api], ls[api+1:]...) })
	edit("fail-entries-reordered", "two entries swapped", "integrity", func(ls []string) []string { ls[db], ls[api] = ls[api], ls[db]; return ls })
	otherLines := strings.Split(string(other.MarshalYAML()), "\n")
	edit("fail-entry-replaced", "an entry replaced by a valid one of the same name from another file", "integrity", func(ls []string) []string {
		for _, l := range otherLines {
			if strings.HasPrefix(l, "  db_password: ") {
				ls[db] = l
			}
		}
		return ls
	})
	edit("fail-manifest-replaced", "the manifest of another file of the same entries", "integrity", func(ls []string) []string {
		ls[find("integrity: ")] = otherLines[len(otherLines)-2]
		return ls
	})
	edit("fail-entry-renamed", "an entry's key renamed in the text", "integrity", func(ls []string) []string {
		ls[api] = strings.Replace(ls[api], "api_key:", "api_kez:", 1)
		return ls
	})
	edit("fail-crlf-inside", "a line break inside a sealed value", "format", func(ls []string) []string {
		ls[db] = ls[db][:40] + "\r\n  " + ls[db][40:]
		return ls
	})
	vs = append(vs, fileVector{Name: "fail-yaml-bomb", Description: "a small file of very many tiny YAML nodes", Expect: "format", File: strings.Repeat("a: b\n", 25000)})
	return vs
}
