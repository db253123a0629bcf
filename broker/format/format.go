// Package format owns the bytes of the value formats: named values written
// as dotenv, JSON or YAML, in order, for outputs and for decrypt.
package format

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/secrets-broker/secrets-broker/envelope"
	"go.yaml.in/yaml/v3"
)

// The formats' names, as outputs and decrypt's --format give them.
const (
	Dotenv = "dotenv"
	JSON   = "json"
	YAML   = "yaml"
)

// Marshal writes values in the named format, in order: dotenv (NAME="VALUE"
// lines), json (an object), or yaml (a mapping; any other name).
func Marshal(values []envelope.Plain, format string) ([]byte, error) {
	switch format {
	case Dotenv:
		var buf bytes.Buffer
		for _, v := range values {
			buf.WriteString(v.Name)
			buf.WriteString("=")
			buf.WriteString(DotenvQuote(string(v.Value)))
			buf.WriteByte('\n')
		}
		return buf.Bytes(), nil
	case JSON:
		var buf bytes.Buffer
		buf.WriteString("{")
		for i, v := range values {
			if i > 0 {
				buf.WriteString(",")
			}
			k, _ := json.Marshal(v.Name)
			val, _ := json.Marshal(string(v.Value))
			fmt.Fprintf(&buf, "\n  %s: %s", k, val)
		}
		buf.WriteString("\n}\n")
		return buf.Bytes(), nil
	}
	// One pair at a time: the emitter's buffers stay the size of one
	// value, not of the whole file (a large file decrypts in about twice
	// its size).
	var buf bytes.Buffer
	for _, v := range values {
		val := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: string(v.Value)}
		if !Text(v.Value) {
			// Bytes YAML text cannot carry (a keystore, a DER key): base64
			// under YAML's !!binary tag, read back byte for byte.
			val = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!binary", Value: base64.StdEncoding.EncodeToString(v.Value)}
		} else if strings.Contains(val.Value, "\n") {
			val.Style = yaml.LiteralStyle
		}
		pair, err := yaml.Marshal(&yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: v.Name}, val}})
		if err != nil {
			return nil, err
		}
		buf.Write(pair)
		clear(pair)
	}
	if len(values) == 0 {
		buf.WriteString("{}\n")
	}
	return buf.Bytes(), nil
}

// Text says whether a value is text YAML carries as it is: valid UTF-8
// with no control characters but tab, newline and carriage return.
func Text(v []byte) bool {
	if !utf8.Valid(v) {
		return false
	}
	for _, c := range v {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}

// DotenvQuote double-quotes a value for dotenv files: \ " $ and ` are
// escaped, newlines kept as they are (multi-line values stay multi-line, as
// docker compose, python-dotenv and a POSIX shell's "source" all read them).
func DotenvQuote(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`")
	return `"` + r.Replace(v) + `"`
}
