package migrate

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// command turns a command (a string, split on spaces, or a list) into argv.
func command(v any) *yaml.Node {
	if l, ok := v.([]any); ok {
		return list(l)
	}
	s := str(v)
	if strings.ContainsAny(s, "|&;<>()$`\\\"'*?[]#~=%") {
		return list([]any{"/bin/sh", "-c", s})
	}
	var parts []any
	for _, p := range strings.Fields(s) {
		parts = append(parts, p)
	}
	return list(parts)
}

func commandComment(v any) string {
	if _, ok := v.([]any); ok {
		return ""
	}
	if strings.ContainsAny(str(v), "|&;<>()$`\\\"'*?[]#~=%") {
		return "shell syntax: run through /bin/sh -c"
	}
	return "argv, no shell"
}

// commonDir is the deepest directory holding every destination.
func commonDir(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	dir := path.Dir(filepath.ToSlash(paths[0]))
	for _, p := range paths[1:] {
		d := path.Dir(filepath.ToSlash(p))
		for dir != "/" && dir != "." && d != dir && !strings.HasPrefix(d, dir+"/") {
			dir = path.Dir(dir)
		}
	}
	return filepath.FromSlash(dir)
}

func blocks(v any) []map[string]any {
	switch x := v.(type) {
	case []map[string]any:
		return x
	case map[string]any:
		return []map[string]any{x}
	case []any:
		var out []map[string]any
		for _, e := range x {
			out = append(out, blocks(e)...)
		}
		return out
	}
	return nil
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = str(e)
		}
		return strings.Join(parts, " ")
	}
	return fmt.Sprint(v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

func scalar(v string) *yaml.Node {
	tag := "!!str"
	if v == "true" || v == "false" {
		tag = "!!bool"
	} else if _, err := strconv.ParseFloat(v, 64); err == nil && strings.Contains(v, ".") {
		tag = "!!float"
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v}
}

func literal(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.LiteralStyle}
}

func list(v any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	items, _ := v.([]any)
	for _, e := range items {
		n.Content = append(n.Content, scalar(str(e)))
	}
	return n
}

func set(m *yaml.Node, key string, v *yaml.Node, comment string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1] = v
			m.Content[i].LineComment = comment
			return
		}
	}
	k := scalar(key)
	if comment != "" {
		if v.Kind == yaml.ScalarNode || v.Style == yaml.FlowStyle {
			v.LineComment = comment
		} else {
			k.LineComment = comment
		}
	}
	m.Content = append(m.Content, k, v)
}

func has(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

// unset removes key from m, if it is there.
func unset(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}
