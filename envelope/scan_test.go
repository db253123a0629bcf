package envelope

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

// sameRaw reports whether two scans found the same parts.
func sameRaw(a, b *rawFile) error {
	if a.version != b.version || a.hasEntries != b.hasEntries || a.hasIntegrity != b.hasIntegrity || !bytes.Equal(a.integrity, b.integrity) || len(a.entries) != len(b.entries) {
		return fmt.Errorf("header or count differs: %+v vs %+v", *a, *b)
	}
	for i := range a.entries {
		if a.entries[i].name != b.entries[i].name || !bytes.Equal(a.entries[i].value, b.entries[i].value) || a.entries[i].line != b.entries[i].line {
			return fmt.Errorf("entry %d differs: %q vs %q", i, a.entries[i].name, b.entries[i].name)
		}
	}
	return nil
}

func noErr(int, string, ...any) error { return fmt.Errorf("error") }

// checkAgree fails when the line scanner accepts data but a YAML parser
// reads it differently (or not at all): the fast path must never change
// what a file means.
func checkAgree(t *testing.T, data []byte) {
	t.Helper()
	fast, ok := scanCanonical(data)
	if !ok {
		return
	}
	var slow *rawFile
	var err error
	if first := bytes.TrimLeft(data, " \t\r\n"); len(first) > 0 && first[0] == '{' {
		slow, err = scanJSON(data, noErr)
	} else {
		slow, err = scanYAML(data, noErr)
	}
	if err != nil {
		t.Fatalf("line scanner accepted what the parser refuses: %q", data)
	}
	if err := sameRaw(fast, slow); err != nil {
		t.Fatalf("line scanner and parser disagree on %q: %v", data, err)
	}
}

type fixedKey struct{}

func (fixedKey) KeyID() string { return "test:fixed" }
func (fixedKey) WrapKey(_ context.Context, k []byte, _ Binding) ([]byte, error) {
	return append([]byte(nil), k...), nil
}
func (fixedKey) UnwrapKey(_ context.Context, k []byte, _ Binding) ([]byte, error) {
	return append([]byte(nil), k...), nil
}

func TestCanonicalScanAgreesWithParsers(t *testing.T) {
	for _, names := range [][]string{{}, {"a"}, {"db_password", "a:b", "@x", "123", "true", "null", "tls/key.pem", "x.y-z"}} {
		var values []Plain
		for _, n := range names {
			values = append(values, Plain{Name: n, Value: []byte("v-" + n)})
		}
		f, err := SealFile(context.Background(), values, map[string]string{"env": "prod"}, fixedKey{})
		if err != nil {
			t.Fatal(err)
		}
		js, _ := f.MarshalJSON()
		for _, data := range [][]byte{f.MarshalYAML(), js} {
			if _, ok := scanCanonical(data); !ok {
				t.Fatalf("the layout we write is not read by the line scanner:\n%s", data)
			}
			checkAgree(t, data)
		}
	}
}

func FuzzCanonicalScanAgrees(f *testing.F) {
	f.Add([]byte("version: 1\nentries:\n  a: sbe1:AAAA\nintegrity: sbe1:BBBB\n"))
	f.Add([]byte("{\n  \"version\": 1,\n  \"entries\": {\n    \"a\": \"sbe1:AA\"\n  },\n  \"integrity\": \"sbe1:BB\"\n}\n"))
	f.Add([]byte("version: 1\nentries: {}\nintegrity: 'sbe1:AA'\n"))
	f.Add([]byte("# c\nversion: 1\nentries:\n  \"a:b\": \"sbe1:A-_\"\nintegrity: sbe1:x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		checkAgree(t, data)
	})
}
