package templates

import (
	"strings"
	"testing"
)

// consul-template's functions, with its argument order and results.
func TestConsulTemplateFunctions(t *testing.T) {
	t.Setenv("SB_TEST_SET", "set")
	cases := map[string]string{
		`{{ "Hello World" | toLower }}`:                                           "hello world",
		`{{ "hello" | toUpper }}`:                                                 "HELLO",
		`{{ "hello big world" | toTitle }}`:                                       "Hello Big World",
		`{{ "  x \n" | trimSpace }}`:                                              "x",
		`{{ range split "," "a,b,c" }}[{{ . }}]{{ end }}`:                         "[a][b][c]",
		`{{ split "," "a,b" | join ";" }}`:                                        "a;b",
		`{{ "a-b-c" | replaceAll "-" "_" }}`:                                      "a_b_c",
		`{{ "abc123" | regexReplaceAll "[0-9]+" "N" }}`:                           "abcN",
		`{{ "abc123" | regexMatch "^[a-z]+[0-9]+$" }}`:                            "true",
		`{{ split "," "a,b" | contains "b" }}`:                                    "true",
		`{{ "production" | contains "prod" }}`:                                    "true",
		`{{ in (split "," "a,b") "c" }}`:                                          "false",
		`{{ split "," "a,b,c" | containsAll (split "," "a,c") }}`:                 "true",
		`{{ split "," "a,b" | containsAny (split "," "x,b") }}`:                   "true",
		`{{ split "," "a,b" | containsNone (split "," "x,y") }}`:                  "true",
		`{{ "true" | parseBool }} {{ "42" | parseInt }}`:                          "true 42",
		`{{ "1.5" | parseFloat }}`:                                                "1.5",
		`{{ with parseJSON "{\"a\":{\"b\":[1,2]}}" }}{{ .a.b }}{{ end }}`:         "[1 2]",
		`{{ (parseYAML "a: 1\nb: [x]").b }}`:                                      "[x]",
		`{{ range loop 3 }}{{ . }}{{ end }}|{{ range loop 2 4 }}{{ . }}{{ end }}`: "012|23",
		`{{ add 1 2 }} {{ 5 | subtract 1 }} {{ subtract 1 5 }} {{ multiply 3 4 }} {{ 10 | divide 4 }} {{ 10 | modulo 4 }} {{ 1.5 | add 1 }}`: "3 4 4 12 2 2 2.5",
		`{{ "abc" | sha256Hex }}`: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		`{{ "abc" | md5sum }}`:    "900150983cd24fb0d6963f7d28e17f72",
		`{{ envOrDefault "SB_TEST_SET" "d" }} {{ envOrDefault "SB_TEST_UNSET" "d" }}`: "set d",
		`{{ define "x" }}<{{ . }}>{{ end }}{{ executeTemplate "x" "y" }}`:             "<y>",
	}
	for text, want := range cases {
		tp, err := Parse("t", text, Options{})
		if err != nil {
			t.Errorf("%s: %v", text, err)
			continue
		}
		got, err := tp.Execute(Data{})
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", text, got, err, want)
		}
	}
	tp, err := Parse("t", `{{ timestamp }}`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := tp.Execute(Data{}); len(got) != len("2006-01-02T15:04:05Z") {
		t.Errorf("timestamp = %q", got)
	}
}

// Consul-only functions and plugin/writeToFile are refused when the
// template is parsed, with the reason, not "function not defined".
func TestConsulOnlyFunctionsAreRefusedWithAReason(t *testing.T) {
	for text, want := range map[string]string{
		`{{ key "app/config" }}`:                    "key is a Consul function",
		`{{ range service "web" }}{{ end }}`:        "service is a Consul function",
		`{{ "x" | plugin "/bin/sh" }}`:              "never runs programs from templates",
		`{{ "x" | writeToFile "/etc/x" "" "" "" }}`: "declare each file as an output",
	} {
		_, err := Parse("t.tmpl", text, Options{})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "t.tmpl:1") {
			t.Errorf("%s: %v; want a refusal naming the line and saying %q", text, err, want)
		}
	}
}
