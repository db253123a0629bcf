// Package testvectors owns the JSON test-vector files under testdata/: a
// test loads them, and regenerates them when its -update flag is given (only
// when a format deliberately changes).
package testvectors

import (
	"encoding/json"
	"os"
	"testing"
)

// Load returns the vectors in path, first writing make's when update is
// set. It fails the test when the file is missing or holds fewer than min.
func Load[T any](t *testing.T, path string, update bool, min int, make func() []T) []T {
	t.Helper()
	if update {
		out, err := json.MarshalIndent(make(), "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []T
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(vs) < min {
		t.Fatalf("%s holds %d vectors, want at least %d", path, len(vs), min)
	}
	return vs
}
