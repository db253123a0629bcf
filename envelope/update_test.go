package envelope_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// Update keeps every untouched entry byte for byte, reseals only what
// changed (in place; new ones appended), drops removed ones, and the result
// verifies and opens to the new values.
func TestUpdateTouchesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	k := newKey(t)
	f, err := envelope.SealFile(ctx, []envelope.Plain{{Name: "a", Value: []byte("1")}, {Name: "b", Value: []byte("2")}, {Name: "c", Value: []byte("3")}},
		map[string]string{"env": "prod"}, k)
	if err != nil {
		t.Fatal(err)
	}
	before := f.MarshalYAML()
	parsed, err := envelope.ParseFile(before, "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	u, err := parsed.Update(ctx, []envelope.KeyWrapper{k}, []envelope.Change{
		{Name: "b", Value: []byte("two")}, {Name: "c", Remove: true}, {Name: "d", Value: []byte{0, 0xff, '\n'}},
	}, k)
	if err != nil {
		t.Fatal(err)
	}
	if u.Entries[0].Envelope.String() != f.Entries[0].Envelope.String() {
		t.Error("an untouched entry was resealed")
	}
	if u.Entries[1].Envelope.String() == f.Entries[1].Envelope.String() {
		t.Error("a changed entry kept its old envelope")
	}
	if len(u.Entries) != 3 || u.Entries[2].Name != "d" || u.Entries[2].Envelope.Context["env"] != "prod" {
		t.Fatalf("entries after update: %+v", u.Entries)
	}
	again, err := envelope.ParseFile(u.MarshalYAML(), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	values, err := again.OpenAll(ctx, envelope.FileExpect{Context: map[string]string{"env": "prod"}}, []envelope.KeyWrapper{k}, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []envelope.Plain{{Name: "a", Value: []byte("1")}, {Name: "b", Value: []byte("two")}, {Name: "d", Value: []byte{0, 0xff, '\n'}}}
	for i, v := range values {
		if v.Name != want[i].Name || !bytes.Equal(v.Value, want[i].Value) {
			t.Errorf("entry %d = %s %q, want %s %q", i, v.Name, v.Value, want[i].Name, want[i].Value)
		}
	}
	// Removing a secret the file does not have is an error naming it.
	if _, err := parsed.Update(ctx, []envelope.KeyWrapper{k}, []envelope.Change{{Name: "zz", Remove: true}}, k); fail.KindOf(err) != fail.NotFound {
		t.Errorf("removing a missing secret: %v", err)
	}
	// A tampered file is not updated.
	lines := bytes.Split(before, []byte("\n"))
	var dropped [][]byte
	for _, l := range lines {
		if !bytes.HasPrefix(l, []byte("  c: ")) {
			dropped = append(dropped, l)
		}
	}
	bad, err := envelope.ParseFile(bytes.Join(dropped, []byte("\n")), "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Update(ctx, []envelope.KeyWrapper{k}, []envelope.Change{{Name: "a", Value: []byte("9")}}, k); fail.KindOf(err) != fail.Integrity {
		t.Errorf("a file with an entry removed by hand was updated: %v", err)
	}
}
