package crypt

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/broker/format"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// DotenvName says whether path names a dotenv file (.env, .env.*, *.env).
func DotenvName(path string) bool {
	b := filepath.Base(path)
	return b == ".env" || strings.HasPrefix(b, ".env.") || strings.HasSuffix(b, ".env")
}

// ParsePlainFile reads plaintext secrets for sealing into a secrets file,
// in order: a dotenv file (by its name, see DotenvName), or a YAML or JSON
// mapping. In a mapping, nested mappings and lists are flattened: each
// leaf is one secret named by its path, keys joined with "." and list
// items by index (db: {password: x} gives db.password). !!binary values
// are base64 bytes.
func ParsePlainFile(data []byte, path string) ([]envelope.Plain, error) {
	if DotenvName(path) {
		return format.ParseDotenv(data, path)
	}
	bad := func(line int, format string, args ...any) error {
		loc := path
		if line > 0 {
			loc = fmt.Sprintf("%s, line %d", path, line)
		}
		return fail.Mark(fail.Usage, fmt.Errorf("%s: %s", loc, fmt.Sprintf(format, args...)))
	}
	if err := readlimit.CheckYAML(data, envelope.MaxFileNodes, path); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, bad(0, "not valid YAML or JSON: %v", err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, bad(0, "expected a mapping of secret names to string values")
	}
	var out []envelope.Plain
	seen := map[string]int{}
	var walk func(prefix string, n *yaml.Node, keyLine int) error
	leaf := func(name string, v *yaml.Node, keyLine int) error {
		if v.Tag != "!!str" && v.Tag != "!!int" && v.Tag != "!!float" && v.Tag != "!!bool" && v.Tag != "!!binary" {
			// The value itself is never quoted in the error.
			return bad(v.Line, "secret %q: the value must be a string (or !!binary base64)", name)
		}
		value := []byte(v.Value)
		if v.Tag == "!!binary" {
			b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(v.Value), ""))
			if err != nil {
				return bad(v.Line, "secret %q: a !!binary value must be base64", name)
			}
			value = b
		}
		if first, dup := seen[name]; dup {
			return bad(keyLine, "secret %q appears twice (first on line %d; a nested key and a dotted one make the same name)", name, first)
		}
		seen[name] = keyLine
		if err := (envelope.Binding{Name: name}).Validate(); err != nil {
			return bad(keyLine, "%v", err)
		}
		out = append(out, envelope.Plain{Name: name, Value: value})
		return nil
	}
	join := func(prefix, k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	walk = func(prefix string, n *yaml.Node, keyLine int) error {
		if len(prefix) > envelope.MaxNameLen {
			// Checked on the way down: a deep nesting of long keys would
			// otherwise build ever longer names (memory quadratic in depth).
			return bad(keyLine, "a secret name under %q... is longer than %d bytes: nest less deeply or use shorter keys", prefix[:32], envelope.MaxNameLen)
		}
		switch n.Kind {
		case yaml.ScalarNode:
			return leaf(prefix, n, keyLine)
		case yaml.MappingNode:
			if len(n.Content) == 0 && prefix != "" {
				return bad(n.Line, "secret %q: an empty mapping holds no value", prefix)
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Kind != yaml.ScalarNode {
					return bad(k.Line, "secret names must be strings")
				}
				if err := walk(join(prefix, k.Value), n.Content[i+1], k.Line); err != nil {
					return err
				}
			}
			return nil
		case yaml.SequenceNode:
			if len(n.Content) == 0 {
				return bad(n.Line, "secret %q: an empty list holds no value", prefix)
			}
			for i, item := range n.Content {
				if err := walk(join(prefix, strconv.Itoa(i)), item, item.Line); err != nil {
					return err
				}
			}
			return nil
		}
		return bad(n.Line, "secret %q: anchors and aliases are not supported; write the value out", prefix)
	}
	if err := walk("", doc.Content[0], 0); err != nil {
		return nil, err
	}
	return out, nil
}
