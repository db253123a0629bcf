package format_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/format"
	"github.com/secrets-broker/secrets-broker/envelope"
)

func TestParseDotenv(t *testing.T) {
	in := "\xef\xbb\xbf# comment\n\nexport A=plain value # a comment\nB='single $HOME \\n'\nC=\"esc \\\"q\\\" \\$HOME \\n \\\\ \\x\"\nD=\"two\nlines\"\nE=\nF = spaced\n"
	got, err := format.ParseDotenv([]byte(in), ".env")
	if err != nil {
		t.Fatal(err)
	}
	want := []envelope.Plain{{Name: "A", Value: []byte("plain value")}, {Name: "B", Value: []byte(`single $HOME \n`)},
		{Name: "C", Value: []byte("esc \"q\" $HOME \n \\ \\x")}, {Name: "D", Value: []byte("two\nlines")}, {Name: "E", Value: []byte("")}, {Name: "F", Value: []byte("spaced")}}
	if len(got) != len(want) {
		t.Fatalf("got %d values: %q", len(got), got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Errorf("%d: %s=%q, want %s=%q", i, got[i].Name, got[i].Value, want[i].Name, want[i].Value)
		}
	}
	for bad, msg := range map[string]string{
		"A\n":                      "line 1: expected NAME=VALUE",
		"A=1\nA=2\n":               `line 2: secret "A" appears twice`,
		"A=\"s3cr3t\n":             `line 1: secret "A": the quote is never closed`,
		"A='s3cr3t' trailing\n":    `secret "A": text after the closing quote`,
		"bad name=s3cr3t\n":        "line 1",
		"X=1\n\nY=\"a\nb\" junk\n": "line 4",
	} {
		_, err := format.ParseDotenv([]byte(bad), ".env")
		if err == nil || !strings.Contains(err.Error(), msg) || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("%q: %v, want %q without the value", bad, err, msg)
		}
	}
}

// What Marshal writes as dotenv reads back the same, for any text.
func FuzzDotenvRoundTrip(f *testing.F) {
	for _, s := range []string{"", "plain", "a\nb", `q"uote`, `$HOME`, "back\\slash", "`tick`", " spaced ", "#hash", "x #y", "crlf\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if !format.Text([]byte(v)) {
			return
		}
		data, err := format.Marshal([]envelope.Plain{{Name: "K", Value: []byte(v)}}, format.Dotenv)
		if err != nil {
			t.Fatal(err)
		}
		got, err := format.ParseDotenv(data, ".env")
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if len(got) != 1 || string(got[0].Value) != v {
			t.Fatalf("%q read back as %q", v, got)
		}
	})
}

// Any input: an error or values, never a panic.
func FuzzParseDotenv(f *testing.F) {
	for _, s := range []string{"A=1\n", "A=\"x\ny\"\n", "A='", "export B=2 # c", "\xef\xbb\xbf"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		format.ParseDotenv(data, ".env")
	})
}
