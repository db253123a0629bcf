// Package migrate owns translating a Vault Agent or consul-template
// configuration (HCL, read with hashicorp/hcl as they read it) into an
// equivalent secrets-broker config (YAML), with a comment on every setting
// that has no equivalent or a different meaning.
package migrate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/scanner"
	"github.com/hashicorp/hcl/hcl/token"
	"go.yaml.in/yaml/v3"
)

// From names the tool a config was written for.
type From string

const (
	VaultAgent     From = "vault-agent"
	ConsulTemplate From = "consul-template"
	// Oversized is HCL too large or deep to parse (checkShape): Convert
	// with any From says what is over.
	Oversized From = "oversized HCL"
)

// MaxInput bounds the config read.
const MaxInput = 1 << 20

// MaxDepth and MaxTokens bound an HCL config's shape before it is parsed:
// hashicorp/hcl builds its tree at about 180 bytes a token and far more a
// level of nesting (a 64 KiB `a = [[[...]]]` took 2.4 GB), so the shape is
// counted first with hcl's own scanner, which keeps nothing. Real Vault
// Agent and consul-template configs nest under 10 levels and hold a few
// hundred tokens; a template's text is one token, however long.
const (
	MaxDepth  = 32
	MaxTokens = 4096
)

// errNotHCL marks input that is not HCL (a character hcl's scanner has no
// token for) nor JSON: it is never handed to the parser.
var errNotHCL = errors.New("not HCL")

// checkShape refuses HCL nested deeper than MaxDepth or holding more than
// MaxTokens tokens, without building anything. hcl.Unmarshal reads input
// that starts with "{" as JSON, which hcl's scanner cannot count: that is
// counted with encoding/json's tokenizer, under the same bounds.
func checkShape(data []byte, source string) error {
	if len(data) > MaxInput {
		return fmt.Errorf("%s is larger than %d bytes, the limit for a config", source, MaxInput)
	}
	tooDeep := func(line int) error {
		return fmt.Errorf("%s nests lists and blocks deeper than %d levels (line %d); a Vault Agent or consul-template config needs far fewer", source, MaxDepth, line)
	}
	tooMany := func(line int) error {
		return fmt.Errorf("%s holds more than %d HCL tokens (at line %d), the limit for a config; split it", source, MaxTokens, line)
	}
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return checkJSONShape(data, tooDeep, tooMany)
	}
	s := scanner.New(data)
	s.Error = func(token.Pos, string) {} // a syntax error is the parser's to report
	// hcl nests one object per label of a block (`a b c { }` is three
	// levels), so a brace counts for the keys before it: opened holds what
	// each open bracket added.
	depth, tokens, keys := 0, 0, 0
	var opened []int
	for {
		t := s.Scan()
		switch t.Type {
		case token.EOF:
			return nil
		case token.ILLEGAL:
			return fmt.Errorf("%w: %q at line %d, column %d", errNotHCL, t.Text, t.Pos.Line, t.Pos.Column)
		case token.LBRACK, token.LBRACE:
			add := 1
			if t.Type == token.LBRACE && keys > 1 {
				add = keys
			}
			opened = append(opened, add)
			if depth += add; depth > MaxDepth {
				return tooDeep(t.Pos.Line)
			}
		case token.RBRACK, token.RBRACE:
			if n := len(opened); n > 0 {
				depth -= opened[n-1]
				opened = opened[:n-1]
			}
		}
		if t.Type == token.IDENT || t.Type == token.STRING {
			keys++
		} else {
			keys = 0
		}
		if tokens++; tokens > MaxTokens {
			return tooMany(t.Pos.Line)
		}
	}
}

// checkJSONShape counts a JSON document's nesting and tokens (keys and
// values, as hcl's JSON parser makes nodes of them) with encoding/json's
// tokenizer, which keeps nothing.
func checkJSONShape(data []byte, tooDeep, tooMany func(line int) error) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	line := func() int { return 1 + bytes.Count(data[:dec.InputOffset()], []byte("\n")) }
	depth, tokens := 0, 0
	for {
		t, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w (read as JSON, as hcl does for a file starting with {): %w", errNotHCL, err)
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			if depth++; depth > MaxDepth {
				return tooDeep(line())
			}
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if tokens++; tokens > MaxTokens {
			return tooMany(line())
		}
	}
}

// Detect says whether data is HCL and, if so, whose config it looks like:
// "" when it does not parse as HCL or has no keys. HCL over the shape
// bounds (checkShape) is not parsed: Convert says why.
func Detect(data []byte) From {
	var m map[string]any
	if err := checkShape(data, ""); errors.Is(err, errNotHCL) {
		return ""
	} else if err != nil {
		if looksLikeHCL(data) {
			return Oversized
		}
		return ""
	}
	if hcl.Unmarshal(data, &m) != nil || len(m) == 0 {
		return ""
	}
	for _, k := range []string{"auto_auth", "template_config", "env_template", "api_proxy", "listener", "exit_after_auth", "cache"} {
		if _, ok := m[k]; ok {
			return VaultAgent
		}
	}
	for _, k := range []string{"template", "vault", "exec", "consul", "wait", "max_stale", "kill_signal", "reload_signal"} {
		if _, ok := m[k]; ok {
			return ConsulTemplate
		}
	}
	return ""
}

// Convert translates an HCL config written for from into broker YAML.
// source names the input in messages and in the header comment.
func Convert(data []byte, from From, source string) ([]byte, error) {
	if err := checkShape(data, source); errors.Is(err, errNotHCL) {
		return nil, fmt.Errorf("%s is not valid HCL: %w", source, err)
	} else if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := hcl.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s is not valid HCL: %w", source, err)
	}
	c := &converter{from: from, root: mapping()}
	switch from {
	case VaultAgent, ConsulTemplate:
	default:
		return nil, fmt.Errorf("cannot migrate from %q: give vault-agent or consul-template", from)
	}
	c.convert(m)
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{c.root}}
	head := fmt.Sprintf("secrets-broker config migrated from the %s config %s.\nCheck it with: secrets-broker validate -c broker.yaml", from, source)
	if len(c.notes) > 0 {
		head += "\n\nSettings with no equivalent (or a different meaning) here:\n  " + strings.Join(c.notes, "\n  ")
	}
	doc.HeadComment = head
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// looksLikeHCL: data that failed checkShape starts like an HCL config
// (its first token is an identifier followed by "=" or "{", or a block
// label), so that the error can say it is HCL over the bounds instead of
// not YAML. Only the first tokens are scanned.
func looksLikeHCL(data []byte) bool {
	s := scanner.New(data)
	s.Error = func(token.Pos, string) {}
	first := s.Scan()
	if first.Type != token.IDENT {
		return false
	}
	switch next := s.Scan(); next.Type {
	case token.ASSIGN, token.LBRACE, token.STRING:
		return true
	}
	return false
}

type converter struct {
	from  From
	root  *yaml.Node
	notes []string
	// secrets declared for env_template, in order.
	secrets *yaml.Node
	env     *yaml.Node
}

func (c *converter) note(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

func (c *converter) convert(m map[string]any) {
	known := map[string]func(v any){
		"vault":           func(v any) { c.vault(blocks(v)) },
		"auto_auth":       func(v any) { c.autoAuth(blocks(v)) },
		"template":        func(v any) { c.templates(blocks(v)) },
		"template_config": func(v any) { c.templateConfig(blocks(v)) },
		"wait":            func(v any) { c.wait("wait", v) },
		"env_template":    func(v any) { c.envTemplates(v) },
		"exec":            func(v any) { c.exec(blocks(v)) },
		"cache":           func(v any) { c.cache(blocks(v)) },
		"pid_file":        func(v any) { c.note("pid_file = %q: pass --pid-file %s to secrets-broker run", str(v), str(v)) },
		"log_level":       func(v any) { c.note("log_level = %q: pass --log-level to secrets-broker", str(v)) },
		"exit_after_auth": func(v any) {
			c.note("exit_after_auth = %v: run secrets-broker run --once for a one-shot render (init container); plain run keeps secrets fresh", v)
		},
		"sink": func(any) {},
	}
	keys := sortedKeys(m)
	// vault first, so auth lands inside it.
	slices.SortStableFunc(keys, func(a, b string) int { return order(a) - order(b) })
	for _, k := range keys {
		if f, ok := known[k]; ok {
			f(m[k])
			continue
		}
		switch k {
		case "consul":
			c.note("consul { ... }: Consul is not a source here; only Vault and files")
		case "listener", "api_proxy":
			c.note("%s: secrets-broker is not a proxy; apps read rendered files or their environment", k)
		case "telemetry":
			c.note("telemetry: set refresh.metrics_address for Prometheus metrics and /readyz")
		case "max_stale":
			c.note("max_stale = %q: a Consul setting; for Vault values while Vault is down see cache.max_stale", str(m[k]))
		case "kill_signal", "reload_signal":
			c.note("%s = %q (for consul-template itself): secrets-broker stops on INT/TERM and reloads on HUP", k, str(m[k]))
		default:
			c.note("%s: no equivalent", k)
		}
	}
	if c.secrets != nil {
		set(c.root, "secrets", c.secrets, "")
	}
}

func order(k string) int {
	switch k {
	case "vault":
		return 0
	case "auto_auth":
		return 1
	case "template":
		return 2
	}
	return 3
}

// section returns the mapping under key, creating it.
func section(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	n := mapping()
	set(m, key, n, "")
	return n
}
