package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

func newKey(t testing.TB) *local.Key {
	t.Helper()
	k, err := local.New(filepath.Join(t.TempDir(), "k.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keys(k ...envelope.KeyWrapper) []envelope.KeyWrapper { return k }

func mustSeal(t testing.TB, pt string, b envelope.Binding, w ...envelope.KeyWrapper) *envelope.Envelope {
	t.Helper()
	e, err := envelope.Seal(context.Background(), []byte(pt), b, w...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func wantKind(t *testing.T, err error, kind fail.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a %s error", kind)
	}
	if got := fail.KindOf(err); got != kind {
		t.Fatalf("error class %s, want %s: %v", got, kind, err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	ctx := context.Background()
	k1, k2 := newKey(t), newKey(t)
	b := envelope.Binding{Name: "db_password", Context: map[string]string{"env": "prod", "app": "billing"}}
	for _, pt := range []string{"", "x", "hunter2", strings.Repeat("A", 70000)} {
		e := mustSeal(t, pt, b, k1, k2)
		text := e.String()
		if !strings.HasPrefix(text, envelope.TextPrefix) {
			t.Fatalf("text form %q lacks prefix", text[:10])
		}
		if strings.Contains(text, "hunter2") {
			t.Fatal("plaintext visible in the envelope")
		}
		parsed, err := envelope.ParseText(text)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(parsed.Marshal(), e.Marshal()) {
			t.Fatal("parse/marshal is not canonical")
		}
		for _, k := range []*local.Key{k1, k2} {
			got, err := parsed.Open(ctx, envelope.Expect{Name: "db_password", Context: map[string]string{"env": "prod"}}, keys(k))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != pt {
				t.Fatalf("round trip changed the plaintext (len %d -> %d)", len(pt), len(got))
			}
		}
	}
}

func TestFreshDataKeyAndNoncePerSecret(t *testing.T) {
	k := newKey(t)
	b := envelope.Binding{Name: "same"}
	a, c := mustSeal(t, "same value", b, k), mustSeal(t, "same value", b, k)
	if a.Nonce == c.Nonce || a.Commitment == c.Commitment || bytes.Equal(a.Ciphertext, c.Ciphertext) ||
		bytes.Equal(a.Stanzas[0].WrappedKey, c.Stanzas[0].WrappedKey) {
		t.Fatal("two seals of the same value share a nonce, commitment, wrapped key or ciphertext")
	}
}

func TestOpenRefusesOtherNameContextAndKey(t *testing.T) {
	ctx := context.Background()
	k, other := newKey(t), newKey(t)
	e := mustSeal(t, "s3cret", envelope.Binding{Name: "api_key", Context: map[string]string{"env": "prod"}}, k)

	_, err := e.Open(ctx, envelope.Expect{Name: "db_password"}, keys(k))
	wantKind(t, err, fail.Integrity)
	if !errors.Is(err, envelope.ErrDecrypt) || !strings.Contains(err.Error(), `"db_password"`) {
		t.Fatalf("error does not say decryption failed for the wanted name: %v", err)
	}
	_, err = e.Open(ctx, envelope.Expect{Context: map[string]string{"env": "dev"}}, keys(k))
	wantKind(t, err, fail.Integrity)

	_, err = e.Open(ctx, envelope.Expect{}, keys(other))
	wantKind(t, err, fail.KeyUnavailable)
	if !strings.Contains(err.Error(), k.KeyID()) || !strings.Contains(err.Error(), other.KeyID()) {
		t.Fatalf("no-match error should list the envelope's and the configured key ids: %v", err)
	}
	_, err = e.Open(ctx, envelope.Expect{}, nil)
	wantKind(t, err, fail.KeyUnavailable)
}

// Renaming in the header changes the binding: the wrapped key no longer opens.
func TestRenamedHeaderFails(t *testing.T) {
	k := newKey(t)
	e := mustSeal(t, "s3cret", envelope.Binding{Name: "aaaa"}, k)
	e.Name = "bbbb"
	_, err := e.Open(context.Background(), envelope.Expect{}, keys(k))
	wantKind(t, err, fail.Integrity)
	e2 := mustSeal(t, "s3cret", envelope.Binding{Name: "a", Context: map[string]string{"env": "prod"}}, k)
	e2.Context["env"] = "dev"
	_, err = e2.Open(context.Background(), envelope.Expect{}, keys(k))
	wantKind(t, err, fail.Integrity)
}

// A wrapper that hands back some other valid key must be caught by the key
// commitment before any decryption (CVE-2020-8897 class).
type liar struct {
	envelope.KeyWrapper
	key []byte
}

func (l liar) UnwrapKey(context.Context, []byte, envelope.Binding) ([]byte, error) {
	return bytes.Clone(l.key), nil
}

func TestKeyCommitment(t *testing.T) {
	k := newKey(t)
	e := mustSeal(t, "s3cret", envelope.Binding{Name: "n"}, k)
	_, err := e.Open(context.Background(), envelope.Expect{}, keys(liar{KeyWrapper: k, key: make([]byte, 32)}))
	wantKind(t, err, fail.Integrity)
	if !strings.Contains(err.Error(), "commitment") {
		t.Fatalf("want a commitment failure, got %v", err)
	}
}

func TestTamperedPayloadAndHeader(t *testing.T) {
	ctx := context.Background()
	k := newKey(t)
	e := mustSeal(t, "s3cret", envelope.Binding{Name: "n"}, k)
	bin := e.Marshal()
	for i := range bin {
		mut := bytes.Clone(bin)
		mut[i] ^= 0x01
		m, err := envelope.Parse(mut)
		if err != nil {
			if k := fail.KindOf(err); k != fail.Format {
				t.Fatalf("byte %d: parse error of class %s: %v", i, k, err)
			}
			continue
		}
		if pt, err := m.Open(ctx, envelope.Expect{}, keys(k)); err == nil {
			t.Fatalf("byte %d flipped, still opened to %d bytes", i, len(pt))
		}
	}
	for n := 0; n < len(bin); n++ {
		if _, err := envelope.Parse(bin[:n]); err == nil {
			t.Fatalf("truncated to %d bytes, still parsed", n)
		}
	}
	if _, err := envelope.Parse(append(bytes.Clone(bin), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestSealRejectsBadInput(t *testing.T) {
	k := newKey(t)
	ctx := context.Background()
	cases := []struct {
		b    envelope.Binding
		pt   []byte
		keys []envelope.KeyWrapper
	}{
		{envelope.Binding{Name: ""}, nil, keys(k)},
		{envelope.Binding{Name: "has space"}, nil, keys(k)},
		{envelope.Binding{Name: strings.Repeat("n", 256)}, nil, keys(k)},
		{envelope.Binding{Name: "n", Context: map[string]string{"secrets-broker:name": "x"}}, nil, keys(k)},
		{envelope.Binding{Name: "n"}, nil, nil},
		{envelope.Binding{Name: "n"}, nil, keys(k, k)},
		{envelope.Binding{Name: "n"}, make([]byte, envelope.MaxPlaintextLen+1), keys(k)},
	}
	for i, c := range cases {
		_, err := envelope.Seal(ctx, c.pt, c.b, c.keys...)
		wantKind(t, err, fail.Usage)
		_ = i
	}
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	k1, k2 := newKey(t), newKey(t)
	e := mustSeal(t, "s3cret", envelope.Binding{Name: "n"}, k1)
	r, err := e.Rewrap(ctx, keys(k1), keys(k2), []string{k1.KeyID()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Ciphertext, e.Ciphertext) || !bytes.Equal(r.SealedBody(), e.SealedBody()) {
		t.Fatal("rewrap touched the ciphertext")
	}
	if got, err := r.Open(ctx, envelope.Expect{}, keys(k2)); err != nil || string(got) != "s3cret" {
		t.Fatalf("rewrapped envelope does not open with the new key: %v", err)
	}
	if _, err := r.Open(ctx, envelope.Expect{}, keys(k1)); err == nil {
		t.Fatal("removed key still opens the envelope")
	}
	_, err = r.Rewrap(ctx, keys(k2), nil, []string{k2.KeyID()})
	wantKind(t, err, fail.Usage)
	_, err = r.Rewrap(ctx, keys(k2), nil, []string{"local:nope"})
	wantKind(t, err, fail.Usage)
}

func TestParseTextErrors(t *testing.T) {
	for text, want := range map[string]string{
		"":                  "must start with",
		"sbe2:AAAA":         "not supported",
		"sbe1:!!!":          "not unpadded base64url",
		"sbe1:AAAA=":        "not unpadded base64url",
		"sbe1:A":            "bad base64",
		"sbe1:" + "c2JlAg":  "version 2",
		"sbe1:" + "eHh4eA":  "bad magic",
		"plaintext-value!!": "must start with",
	} {
		_, err := envelope.ParseText(text)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, envelope.ErrFormat) {
			t.Errorf("ParseText(%q) = %v, want an ErrFormat containing %q", text, err, want)
		}
	}
}

func TestSecretsFile(t *testing.T) {
	ctx := context.Background()
	k := newKey(t)
	values := []envelope.Plain{{Name: "db_password", Value: []byte("pw1")}, {Name: "api_key", Value: []byte("ak1")}, {Name: "tls.key", Value: []byte("-----BEGIN KEY-----\nabc\n")}}
	f, err := envelope.SealFile(ctx, values, map[string]string{"env": "prod"}, k)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"yaml", "json"} {
		var data []byte
		if format == "yaml" {
			data = f.MarshalYAML()
		} else {
			data, _ = f.MarshalJSON()
		}
		p, err := envelope.ParseFile(data, "s."+format)
		if err != nil {
			t.Fatalf("%s: %v\n%s", format, err, data)
		}
		all, err := p.OpenAll(ctx, envelope.FileExpect{}, keys(k), 4)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			if all[i].Name != v.Name || string(all[i].Value) != string(v.Value) {
				t.Fatalf("%s: entry %d = %q, want %q", format, i, all[i].Name, v.Name)
			}
		}
		got, err := p.Open(ctx, envelope.Expect{Name: "api_key"}, envelope.FileExpect{}, keys(k))
		if err != nil || string(got) != "ak1" {
			t.Fatalf("Open api_key: %q, %v", got, err)
		}
		_, err = p.Open(ctx, envelope.Expect{Name: "nope"}, envelope.FileExpect{}, keys(k))
		wantKind(t, err, fail.NotFound)
	}
}

func sealedFile(t *testing.T, k envelope.KeyWrapper, kv ...string) *envelope.File {
	t.Helper()
	var values []envelope.Plain
	for i := 0; i < len(kv); i += 2 {
		values = append(values, envelope.Plain{Name: kv[i], Value: []byte(kv[i+1])})
	}
	f, err := envelope.SealFile(context.Background(), values, nil, k)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSecretsFileTamper(t *testing.T) {
	ctx := context.Background()
	k := newKey(t)
	v1 := sealedFile(t, k, "a", "1", "b", "2", "c", "3")
	v2 := sealedFile(t, k, "a", "1-new", "b", "2", "c", "3")
	other := sealedFile(t, k, "x", "9")
	cases := map[string]func(f *envelope.File){
		"remove entry":   func(f *envelope.File) { f.Entries = f.Entries[1:] },
		"reorder":        func(f *envelope.File) { f.Entries[0], f.Entries[1] = f.Entries[1], f.Entries[0] },
		"add entry":      func(f *envelope.File) { f.Entries = append(f.Entries, other.Entries[0]) },
		"rollback entry": func(f *envelope.File) { f.Entries[0] = v1.Entries[0] },
		"other manifest": func(f *envelope.File) { f.Integrity = other.Integrity },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			data := v2.MarshalYAML()
			f, err := envelope.ParseFile(data, "s.yaml")
			if err != nil {
				t.Fatal(err)
			}
			mutate(f)
			f2, err := envelope.ParseFile(f.MarshalYAML(), "s.yaml")
			if err != nil {
				t.Fatal(err)
			}
			_, err = f2.OpenAll(ctx, envelope.FileExpect{}, keys(k), 2)
			wantKind(t, err, fail.Integrity)
			_, err = f2.Open(ctx, envelope.Expect{Name: "b"}, envelope.FileExpect{}, keys(k))
			wantKind(t, err, fail.Integrity)
		})
	}
	// Renaming an entry key in the text is caught at parse time.
	data := strings.Replace(string(v2.MarshalYAML()), "\n  b: ", "\n  bb: ", 1)
	_, err := envelope.ParseFile([]byte(data), "s.yaml")
	wantKind(t, err, fail.Integrity)
	if !strings.Contains(err.Error(), "s.yaml, line") {
		t.Fatalf("error does not name file and line: %v", err)
	}
}

func TestParseFileErrorsNameLine(t *testing.T) {
	cases := map[string]string{
		"version: 1\nentries: {}\nintegrity: x\n":              "line 3",
		"version: 2\nentries: {}\nintegrity: sbe1:AA\n":        "version",
		"version: 1\nentries:\n  a: notsealed\nintegrity: x\n": "line 4",
		"version: 1\nentries: []\nintegrity: x\n":              "line 2",
		"- 1\n":                                       "expected a mapping",
		"version: 1\nentries: {}\n":                   "missing key",
		"version: 1\nentries: {}\nunknown: 1\n":       `unknown key "unknown"`,
		"version: 1\nversion: 1\n":                    "appears twice",
		"a: &x 1\nversion: *x\n":                      "unknown key",
		"version: 1\nentries:\n  a: *x\nintegrity: x": "YAML",
	}
	for in, want := range cases {
		_, err := envelope.ParseFile([]byte(in), "bad.yaml")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("ParseFile(%q) = %v, want error with %q", in, err, want)
		}
	}
}

func TestFileRewrap(t *testing.T) {
	ctx := context.Background()
	k1, k2 := newKey(t), newKey(t)
	f := sealedFile(t, k1, "a", "1", "b", "2")
	r, err := f.Rewrap(ctx, keys(k1), keys(k2), []string{k1.KeyID()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := envelope.ParseFile(r.MarshalYAML(), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	all, err := p.OpenAll(ctx, envelope.FileExpect{}, keys(k2), 2)
	if err != nil || string(all[1].Value) != "2" {
		t.Fatalf("rewrapped file: %v", err)
	}
	p2, _ := envelope.ParseFile(r.MarshalYAML(), "r.yaml")
	_, err = p2.OpenAll(ctx, envelope.FileExpect{}, keys(k1), 2)
	wantKind(t, err, fail.KeyUnavailable)
}

func TestMain(m *testing.M) {
	os.Exit(m.Run())
}
