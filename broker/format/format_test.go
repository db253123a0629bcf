package format_test

import (
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/format"
	"github.com/secrets-broker/secrets-broker/envelope"
)

func TestDotenvQuote(t *testing.T) {
	cases := map[string]string{
		"plain":          `"plain"`,
		`a"b\c$d` + "`e": `"a\"b\\c\$d` + "\\`e\"",
		"multi\nline":    "\"multi\nline\"",
		"":               `""`,
	}
	for in, want := range cases {
		if got := format.DotenvQuote(in); got != want {
			t.Errorf("DotenvQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// Each format keeps the values' order and writes each value so that its
// reader gets it back as it was: quoted dotenv, JSON strings, YAML strings
// (a multi-line value as a literal block, a number-like value quoted).
func TestMarshalKeepsOrderAndValues(t *testing.T) {
	values := []envelope.Plain{{Name: "b", Value: []byte("2")}, {Name: "a", Value: []byte("x\ny")}}
	want := map[string]string{
		format.Dotenv: "b=\"2\"\na=\"x\ny\"\n",
		format.JSON:   "{\n  \"b\": \"2\",\n  \"a\": \"x\\ny\"\n}\n",
		format.YAML:   "b: \"2\"\na: |-\n    x\n    y\n",
	}
	for f, w := range want {
		got, err := format.Marshal(values, f)
		if err != nil || string(got) != w {
			t.Errorf("Marshal(%s) = %q, %v; want %q", f, got, err, w)
		}
	}
	if got, err := format.Marshal(nil, format.YAML); err != nil || string(got) != "{}\n" {
		t.Errorf("Marshal(nil, yaml) = %q, %v; want an empty mapping", got, err)
	}
}
