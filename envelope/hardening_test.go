package envelope_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// patched seals an envelope, replaces old with new in its binary form (same
// length) and returns the text form: a header an attacker edited.
func patched(t *testing.T, b envelope.Binding, w envelope.KeyWrapper, old, new string) string {
	t.Helper()
	if len(old) != len(new) {
		t.Fatal("patch must keep the length")
	}
	bin := mustSeal(t, "v", b, w).Marshal()
	if bytes.Count(bin, []byte(old)) != 1 {
		t.Fatalf("%q is not in the envelope once", old)
	}
	bin = bytes.Replace(bin, []byte(old), []byte(new), 1)
	return envelope.TextPrefix + base64.RawURLEncoding.EncodeToString(bin)
}

func wantFormat(t *testing.T, text, msg string) {
	t.Helper()
	_, err := envelope.ParseText(text)
	if err == nil || !errors.Is(err, envelope.ErrFormat) || !strings.Contains(err.Error(), msg) {
		t.Fatalf("ParseText = %v, want a format error containing %q", err, msg)
	}
}

func TestTextFormRefusesLineBreaksInside(t *testing.T) {
	k := newKey(t)
	text := mustSeal(t, "v", envelope.Binding{Name: "a"}, k).String()
	for _, brk := range []string{"\n", "\r\n", "\r"} {
		wantFormat(t, text[:20]+brk+text[20:], "not unpadded base64url")
	}
	// Surrounding white space stays allowed (files end with a newline).
	if _, err := envelope.ParseText(" " + text + "\r\n"); err != nil {
		t.Fatal(err)
	}
}

func TestCreatedBoundMatchesSpec(t *testing.T) {
	k := newKey(t)
	e := mustSeal(t, "v", envelope.Binding{Name: "a"}, k)
	bin := e.Marshal()
	// created is the 8 bytes after magic (4) and suite (1): docs/envelope.md.
	set := func(v uint64) string {
		b := append([]byte(nil), bin...)
		for i := 0; i < 8; i++ {
			b[5+i] = byte(v >> (56 - 8*i))
		}
		return envelope.TextPrefix + base64.RawURLEncoding.EncodeToString(b)
	}
	wantFormat(t, set(envelope.MaxCreated), "out of range")
	if _, err := envelope.ParseText(set(envelope.MaxCreated - 1)); err != nil {
		t.Fatalf("created 2^40-1: %v", err)
	}
}

func TestReservedPrefixRefused(t *testing.T) {
	k := newKey(t)
	if _, err := envelope.Seal(context.Background(), []byte("v"), envelope.Binding{Name: "secrets-broker:manifest"}, k); err == nil {
		t.Fatal("sealed a user secret under the manifest's name")
	}
	if _, err := envelope.Seal(context.Background(), []byte("v"), envelope.Binding{Name: "a", Context: map[string]string{"secrets-broker:name": "b"}}, k); err == nil {
		t.Fatal("sealed with a reserved context key")
	}
	wantFormat(t, patched(t, envelope.Binding{Name: "secretsXbroker:zz"}, k, "secretsXbroker:", "secrets-broker:"), "reserved prefix")
	wantFormat(t, patched(t, envelope.Binding{Name: "a", Context: map[string]string{"secretsXbroker:k": "v"}}, k, "secretsXbroker:", "secrets-broker:"), "reserved prefix")
}

func TestIdentifiersArePrintable(t *testing.T) {
	k := newKey(t)
	for _, v := range []string{"a\x1b[31mb", "a\u202eb", "a\nb", "a\x00b"} {
		if _, err := envelope.Seal(context.Background(), []byte("v"), envelope.Binding{Name: "a", Context: map[string]string{"env": v}}, k); err == nil {
			t.Fatalf("sealed with context value %q", v)
		}
	}
	wantFormat(t, patched(t, envelope.Binding{Name: "a", Context: map[string]string{"env": "aXXXXb"}}, k, "aXXXXb", "a\x1b[1mb"), "unprintable")
	wantFormat(t, patched(t, envelope.Binding{Name: "a", Context: map[string]string{"eXv": "x"}}, k, "eXv", "e v"), "context key")
	// Key ids: the local id is hex; a forged stanza with an escape sequence
	// is refused before anything prints it.
	id := k.KeyID()
	wantFormat(t, patched(t, envelope.Binding{Name: "a"}, k, id, id[:len(id)-4]+"\x1b[2J"), "not a valid local key id")
	wantFormat(t, patched(t, envelope.Binding{Name: "a"}, k, id, "evil:"+id[5:len(id)-1]+" "), "printable ASCII")
	for _, good := range []string{"awskms:arn:aws:kms:eu-west-1:111122223333:key/mrk-1234abcd", "transit:transit/app", "transit:team/transit/app", "future:anything-printable"} {
		if err := envelope.ValidKeyID(good); err != nil {
			t.Errorf("ValidKeyID(%q) = %v", good, err)
		}
	}
	for _, bad := range []string{"awskms:arn:aws:kms:eu-west-1:1:key/x", "awskms:alias/foo", "transit:app", "local:ABC", "nocolon"} {
		if err := envelope.ValidKeyID(bad); err == nil {
			t.Errorf("ValidKeyID(%q) accepted it", bad)
		}
	}
}

func TestFileEntriesCannotChangeAfterVerification(t *testing.T) {
	ctx := context.Background()
	k := newKey(t)
	f := sealedFile(t, k, "a", "1", "b", "2")
	if err := f.Verify(ctx, envelope.FileExpect{}, keys(k)); err != nil {
		t.Fatal(err)
	}
	// A valid envelope of the same name, sealed elsewhere, swapped in
	// after the check.
	f.Entries[0].Envelope = mustSeal(t, "evil", envelope.Binding{Name: "a"}, k)
	_, err := f.Open(ctx, envelope.Expect{Name: "a"}, envelope.FileExpect{}, keys(k))
	wantKind(t, err, fail.Integrity)
	_, err = f.OpenAll(ctx, envelope.FileExpect{}, keys(k), 2)
	wantKind(t, err, fail.Integrity)
	f.Entries = append(f.Entries, envelope.Entry{Name: "c", Envelope: mustSeal(t, "3", envelope.Binding{Name: "c"}, k)})
	_, err = f.Open(ctx, envelope.Expect{Name: "c"}, envelope.FileExpect{}, keys(k))
	wantKind(t, err, fail.Integrity)
}

func TestFileContextEnforced(t *testing.T) {
	ctx := context.Background()
	k := newKey(t)
	staging, err := envelope.SealFile(ctx, []envelope.Plain{{Name: "db", Value: []byte("staging-pw")}}, map[string]string{"env": "staging"}, k)
	if err != nil {
		t.Fatal(err)
	}
	if got := staging.Context()["env"]; got != "staging" {
		t.Fatalf("manifest context %v", staging.Context())
	}
	parsed, err := envelope.ParseFile(staging.MarshalYAML(), "prod.enc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prod := envelope.FileExpect{Context: map[string]string{"env": "prod"}}
	if err := parsed.Verify(ctx, prod, keys(k)); fail.KindOf(err) != fail.Integrity || !strings.Contains(err.Error(), "env=prod") {
		t.Fatalf("staging file accepted as prod: %v", err)
	}
	_, err = parsed.Open(ctx, envelope.Expect{Name: "db"}, prod, keys(k))
	wantKind(t, err, fail.Integrity)
	_, err = parsed.OpenAll(ctx, prod, keys(k), 1)
	wantKind(t, err, fail.Integrity)
	// A per-secret requirement is checked on the entry.
	_, err = parsed.Open(ctx, envelope.Expect{Name: "db", Context: map[string]string{"tier": "db"}}, envelope.FileExpect{}, keys(k))
	wantKind(t, err, fail.Integrity)
	got, err := parsed.Open(ctx, envelope.Expect{Name: "db"}, envelope.FileExpect{Context: map[string]string{"env": "staging"}}, keys(k))
	if err != nil || string(got) != "staging-pw" {
		t.Fatalf("open with the right context: %q, %v", got, err)
	}
}

func TestParseFileBoundsTheYAMLTree(t *testing.T) {
	// Just under MaxFreeFormLen of tiny mapping entries would build a
	// million nodes: refused before the tree is built.
	bomb := strings.Repeat("a: b\n", envelope.MaxFreeFormLen/5)
	_, err := envelope.ParseFile([]byte(bomb), "bomb.yaml")
	if fail.KindOf(err) != fail.Format || !strings.Contains(err.Error(), "too many YAML elements") {
		t.Fatalf("ParseFile(bomb) = %v", err)
	}
	flow := "[" + strings.Repeat("[a,b],", envelope.MaxFreeFormLen/6-1) + "]"
	_, err = envelope.ParseFile([]byte(flow), "flow.yaml")
	if fail.KindOf(err) != fail.Format || !strings.Contains(err.Error(), "too many YAML elements") {
		t.Fatalf("ParseFile(flow) = %v", err)
	}
	// Larger files must be in the layout secrets-broker writes.
	_, err = envelope.ParseFile([]byte(strings.Repeat("a: b\n", 2*envelope.MaxFreeFormLen/5)), "big.yaml")
	if fail.KindOf(err) != fail.Format || !strings.Contains(err.Error(), "not in the layout secrets-broker writes") {
		t.Fatalf("ParseFile(2 MiB bomb) = %v", err)
	}
	// A real file of the largest entry count stays within the bound.
	values := make([]envelope.Plain, envelope.MaxEntries)
	for i := range values {
		values[i] = envelope.Plain{Name: fmt.Sprintf("secret_%05d", i), Value: []byte("v")}
	}
	f, err := envelope.SealFile(context.Background(), values, map[string]string{"env": "prod"}, newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{f.MarshalYAML(), mustJSON(t, f)} {
		if _, err := envelope.ParseFile(data, "big"); err != nil {
			t.Fatalf("largest file refused: %v", err)
		}
	}
}

func mustJSON(t *testing.T, f *envelope.File) []byte {
	b, err := f.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
