package crypt_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/crypt"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

// Plaintext input keeps its order and refuses what cannot be sealed
// faithfully, naming the line and never quoting a value.
func TestParsePlainFile(t *testing.T) {
	got, err := crypt.ParsePlainFile([]byte("b: two\na: 1\n"), "in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "b" || string(got[0].Value) != "two" || got[1].Name != "a" || string(got[1].Value) != "1" {
		t.Fatalf("got %+v", got)
	}
	for in, want := range map[string]string{
		"- a\n":                       "expected a mapping",
		"a: x\na: y\n":                `in.yaml, line 2: secret "a" appears twice`,
		"a:\n  nested: {}\n":          `in.yaml, line 2: secret "a.nested": an empty mapping holds no value`,
		"a.b: s3cr3t\na:\n  b: x\n":   `in.yaml, line 3: secret "a.b" appears twice`,
		"a: &x s3cr3t\nb: *x\n":       `secret "b": anchors and aliases are not supported`,
		"? [k]\n: v\n":                "secret names must be strings",
		"a: [unclosed\n":              "not valid YAML or JSON",
		"\"bad name\": s3cr3t\n":      "in.yaml, line 1",
		"a: !!binary czNjc!!!\n":      `secret "a": a !!binary value must be base64`,
		"a: !!timestamp 2001-12-14\n": `secret "a": the value must be a string`,
	} {
		_, err := crypt.ParsePlainFile([]byte(in), "in.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error containing %q", in, err, want)
		}
		if err != nil && (strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "czNjcjN0")) {
			t.Errorf("%q: the error quotes the value: %v", in, err)
		}
	}
	// Nested mappings and lists flatten to dotted names, in order.
	got, err = crypt.ParsePlainFile([]byte("db:\n  user: u\n  hosts: [h1, h2]\nplain: p\n"), "in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range got {
		names = append(names, v.Name+"="+string(v.Value))
	}
	if strings.Join(names, " ") != "db.user=u db.hosts.0=h1 db.hosts.1=h2 plain=p" {
		t.Errorf("flattened: %v", names)
	}
	// Deep nesting of long keys is refused as soon as the name is too
	// long, not after building every longer name.
	var deep strings.Builder
	for i := 0; i < 3000; i++ {
		deep.WriteString("{" + strings.Repeat("k", 200) + ": ")
	}
	deep.WriteString("v" + strings.Repeat("}", 3000))
	if _, err := crypt.ParsePlainFile([]byte(deep.String()), "deep.yaml"); err == nil || !strings.Contains(err.Error(), "nest less deeply") {
		t.Errorf("deep nesting: %v", err)
	}
	// A dotenv file, by its name.
	if got, err := crypt.ParsePlainFile([]byte("A=1\nB=\"two\"\n"), "prod.env"); err != nil || len(got) != 2 || string(got[1].Value) != "two" {
		t.Errorf("dotenv: %q %v", got, err)
	}
	// !!binary carries bytes YAML text cannot, byte for byte.
	if got, err := crypt.ParsePlainFile([]byte("a: !!binary AAH/Cg==\n"), "in.yaml"); err != nil || string(got[0].Value) != "\x00\x01\xff\n" {
		t.Errorf("!!binary: %q %v", got, err)
	}
	if _, err := crypt.ParseFormat("toml"); err == nil {
		t.Error("format toml accepted")
	}
}

// A sealed file and a single envelope both read back, inspect without
// values, rotate under new data keys and rewrap to another key, and the
// result opens with what it was rewrapped to.
func TestSealedRoundTrips(t *testing.T) {
	ctx := context.Background()
	k1, k2 := local.Generate(), local.Generate()
	f, err := envelope.SealFile(ctx, []envelope.Plain{{Name: "db", Value: []byte("pw-1")}, {Name: "api", Value: []byte("ak-2")}}, map[string]string{"env": "prod"}, k1)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []crypt.Format{crypt.FormatYAML, crypt.FormatJSON} {
		data, err := crypt.MarshalFile(f, format)
		if err != nil {
			t.Fatal(err)
		}
		s, err := crypt.ParseSealed(data, "s."+string(format))
		if err != nil || s.File == nil {
			t.Fatalf("%s: %v", format, err)
		}
		sum, err := s.Inspect(ctx, []envelope.KeyWrapper{k1})
		if err != nil || sum.IntegrityVerified == nil || len(sum.Entries) != 2 || sum.Entries[0].Name != "db" {
			t.Fatalf("%s: inspect %+v %v", format, sum, err)
		}
		var text bytes.Buffer
		crypt.FormatSummary(sum, &text)
		if !strings.Contains(text.String(), "integrity manifest: verified") || !strings.Contains(text.String(), "context: env=prod") || strings.Contains(text.String(), "pw-1") {
			t.Errorf("%s: summary:\n%s", format, text.String())
		}
		if !slices.Equal(s.KeyIDs(), []string{k1.KeyID()}) {
			t.Errorf("%s: key ids %v, want %s", format, s.KeyIDs(), k1.KeyID())
		}
		rotated, err := s.Rotate(ctx, []envelope.KeyWrapper{k1}, []envelope.KeyWrapper{k1})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(rotated.File.Entries[0].Envelope.Ciphertext, s.File.Entries[0].Envelope.Ciphertext) {
			t.Errorf("%s: rotate kept the ciphertext", format)
		}
		moved, err := rotated.Rewrap(ctx, []envelope.KeyWrapper{k1}, []envelope.KeyWrapper{k2}, []string{k1.KeyID()})
		if err != nil {
			t.Fatal(err)
		}
		out, err := moved.Marshal(format)
		if err != nil {
			t.Fatal(err)
		}
		back, err := crypt.ParseSealed(out, "moved")
		if err != nil {
			t.Fatal(err)
		}
		values, err := back.File.OpenAll(ctx, envelope.FileExpect{}, []envelope.KeyWrapper{k2}, 2)
		if err != nil || string(values[0].Value) != "pw-1" || string(values[1].Value) != "ak-2" {
			t.Fatalf("%s: the rewrapped file opens to %+v (%v)", format, values, err)
		}
		if _, err := back.File.OpenAll(ctx, envelope.FileExpect{}, []envelope.KeyWrapper{k1}, 2); err == nil {
			t.Errorf("%s: the removed key still opens the file", format)
		}
		plain, err := crypt.MarshalPlain(values, format)
		if err != nil || !strings.Contains(string(plain), "pw-1") {
			t.Errorf("%s: plain %q %v", format, plain, err)
		}
	}

	e, err := envelope.Seal(ctx, []byte("one"), envelope.Binding{Name: "solo"}, k1)
	if err != nil {
		t.Fatal(err)
	}
	s, err := crypt.ParseSealed([]byte(e.String()+"\n"), "solo.sbe")
	if err != nil || s.Single == nil {
		t.Fatalf("a single envelope: %v", err)
	}
	if sum, _ := s.Inspect(ctx, nil); sum.Kind != "envelope" || sum.Entries[0].Name != "solo" {
		t.Errorf("inspect of one envelope: %+v", sum)
	}
	rotated, err := s.Rotate(ctx, []envelope.KeyWrapper{k1}, []envelope.KeyWrapper{k2})
	if err != nil {
		t.Fatal(err)
	}
	rewrapped, err := rotated.Rewrap(ctx, []envelope.KeyWrapper{k2}, []envelope.KeyWrapper{k1}, nil)
	if err != nil || !slices.Contains(rewrapped.KeyIDs(), k1.KeyID()) || !slices.Contains(rewrapped.KeyIDs(), k2.KeyID()) {
		t.Fatalf("rewrap of one envelope: %v %v", rewrapped, err)
	}
	out, _ := rewrapped.Marshal(crypt.FormatYAML)
	again, err := crypt.ParseSealed(out, "solo.sbe")
	if err != nil {
		t.Fatal(err)
	}
	pt, err := again.Single.Open(ctx, envelope.Expect{Name: "solo"}, []envelope.KeyWrapper{k1})
	if err != nil || string(pt) != "one" {
		t.Fatalf("the envelope opens to %q (%v)", pt, err)
	}
}
