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
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
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
		"wait":            func(v any) { c.wait("wait", blocks(v)) },
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

func (c *converter) vault(bs []map[string]any) {
	for _, b := range bs {
		v := section(c.root, "vault")
		for _, k := range sortedKeys(b) {
			val := b[k]
			switch k {
			case "address", "namespace", "ca_cert", "ca_path", "client_cert", "client_key", "tls_server_name":
				set(v, k, scalar(str(val)), "")
			case "ssl": // consul-template
				for _, s := range blocks(val) {
					for _, sk := range sortedKeys(s) {
						switch sk {
						case "ca_cert", "ca_path":
							set(v, sk, scalar(str(s[sk])), "")
						case "cert":
							set(v, "client_cert", scalar(str(s[sk])), "")
						case "key":
							set(v, "client_key", scalar(str(s[sk])), "")
						case "server_name":
							set(v, "tls_server_name", scalar(str(s[sk])), "")
						case "verify":
							if b, _ := s[sk].(bool); !b {
								c.note("vault.ssl.verify = false: TLS is always verified; give the CA with vault.ca_cert")
							}
						case "enabled":
						default:
							c.note("vault.ssl.%s: no equivalent", sk)
						}
					}
				}
			case "tls_skip_verify":
				if b, _ := val.(bool); b {
					c.note("vault.tls_skip_verify = true: TLS is always verified; give the CA with vault.ca_cert")
				}
			case "retry":
				c.note("vault.retry: one retry policy (exponential backoff, full jitter) bounded by --timeout at start")
			case "token":
				c.note("vault.token: a token in a config file is not read; use VAULT_TOKEN or vault.auth.token_file")
			case "vault_agent_token_file":
				a := section(v, "auth")
				set(a, "method", scalar("token"), "")
				set(a, "token_file", scalar(str(val)), "re-read at every login")
			case "renew_token":
				c.note("vault.renew_token: the broker always renews its own token and logs in again when it cannot")
			case "unwrap_token":
				c.note("vault.unwrap_token: a wrapped token is not unwrapped; AppRole's wrapped secret_id is (secret_id_response_wrapped)")
			case "default_lease_duration":
				c.note("vault.default_lease_duration: secrets without a lease are read again every refresh.static_interval")
			case "lease_renewal_threshold":
				r := section(c.root, "refresh")
				set(r, "certificate_renewal", scalar(fmt.Sprint(val)), "leases renew at a random point in 1/3-5/6 of the time left")
			default:
				c.note("vault.%s: no equivalent", k)
			}
		}
	}
}

func (c *converter) autoAuth(bs []map[string]any) {
	for _, b := range bs {
		for _, k := range sortedKeys(b) {
			switch k {
			case "method":
				c.methods(b[k])
			case "sink":
				c.note("auto_auth.sink: not needed: the broker keeps its token in memory (and, with cache:, sealed on disk)")
			default:
				c.note("auto_auth.%s: no equivalent", k)
			}
		}
	}
}

// methods reads method "TYPE" { ... } or method { type = "TYPE" ... }.
func (c *converter) methods(v any) {
	var ms []map[string]any
	var types []string
	for _, b := range blocks(v) {
		if t, ok := b["type"]; ok {
			ms, types = append(ms, b), append(types, str(t))
			continue
		}
		for _, t := range sortedKeys(b) {
			for _, inner := range blocks(b[t]) {
				ms, types = append(ms, inner), append(types, t)
			}
		}
	}
	for i, m := range ms {
		if i > 0 {
			c.note("auto_auth.method %q: only one auth method is used; the first (%s) was kept", types[i], types[0])
			continue
		}
		a := section(section(c.root, "vault"), "auth")
		cfg := map[string]any{}
		for _, b := range blocks(m["config"]) {
			for k, v := range b {
				cfg[k] = v
			}
		}
		if mp := str(m["mount_path"]); mp != "" {
			set(a, "mount", scalar(strings.TrimPrefix(mp, "auth/")), "")
		}
		if ns := str(m["namespace"]); ns != "" {
			c.note("auto_auth.method.namespace: log in within vault.namespace")
		}
		used := map[string]bool{}
		take := func(from, to string, comment string) {
			if v, ok := cfg[from]; ok {
				used[from] = true
				set(a, to, scalar(str(v)), comment)
			}
		}
		switch types[i] {
		case "kubernetes":
			set(a, "method", scalar("kubernetes"), "")
			take("role", "role", "")
			take("token_path", "service_account_token_file", "")
		case "approle":
			set(a, "method", scalar("approle"), "")
			take("role_id_file_path", "role_id_file", "")
			take("secret_id_file_path", "secret_id_file", "")
			take("remove_secret_id_file_after_reading", "remove_secret_id_file_after_reading", "")
			if _, ok := cfg["secret_id_response_wrapping_path"]; ok {
				used["secret_id_response_wrapping_path"] = true
				set(a, "secret_id_response_wrapped", scalar("true"), "the wrapping path is not checked")
			}
		case "jwt":
			set(a, "method", scalar("jwt"), "")
			take("role", "role", "")
			take("path", "jwt_file", "re-read at every login")
			used["remove_jwt_after_reading"] = true
		case "token_file":
			set(a, "method", scalar("token"), "")
			take("token_file_path", "token_file", "re-read at every login")
		default:
			c.note("auto_auth.method %q: not supported (token, approle, kubernetes and jwt are); log in with one of those", types[i])
			continue
		}
		for _, k := range sortedKeys(cfg) {
			if !used[k] {
				c.note("auto_auth.method %q config.%s: no equivalent", types[i], k)
			}
		}
		if a.Content[0].Value != "method" { // method first
			for j := 0; j+1 < len(a.Content); j += 2 {
				if a.Content[j].Value == "method" {
					k, v := a.Content[j], a.Content[j+1]
					a.Content = append(a.Content[:j], a.Content[j+2:]...)
					a.Content = append([]*yaml.Node{k, v}, a.Content...)
					break
				}
			}
		}
	}
}

func (c *converter) templates(bs []map[string]any) {
	var dests []string
	for _, b := range bs {
		if d := str(b["destination"]); d != "" {
			dests = append(dests, d)
		}
	}
	root := commonDir(dests)
	if len(dests) > 0 {
		comment := ""
		if root == "/" {
			comment = "the destinations share no directory: consider one output directory"
		}
		set(c.root, "output_root", scalar(root), comment)
	}
	outs := &yaml.Node{Kind: yaml.SequenceNode}
	for i, b := range bs {
		o := mapping()
		where := fmt.Sprintf("template %d", i+1)
		dest := str(b["destination"])
		if dest == "" {
			c.note("%s: no destination; it is left out", where)
			continue
		}
		where = fmt.Sprintf("template %q", dest)
		rel := dest
		if root != "" {
			if r, err := filepath.Rel(root, dest); err == nil {
				rel = r
			}
		}
		set(o, "path", scalar(rel), "")
		for _, k := range sortedKeys(b) {
			v := b[k]
			switch k {
			case "destination":
			case "source":
				set(o, "template", scalar(str(v)), "")
			case "contents":
				set(o, "template_text", literal(str(v)), "")
			case "perms":
				set(o, "mode", scalar(fmt.Sprintf("%04s", strings.TrimPrefix(permsText(v), "0o"))), "")
			case "user", "group":
				set(o, k, scalar(str(v)), "")
			case "command":
				set(section(o, "notify"), "command", command(v), commandComment(v))
			case "command_timeout":
				set(section(o, "notify"), "timeout", scalar(str(v)), "")
			case "error_on_missing_key":
				if b, _ := v.(bool); !b {
					c.note("%s error_on_missing_key = false: a missing key is always an error here", where)
				}
			case "left_delimiter", "right_delimiter":
				c.note("%s %s = %q: templates use {{ }}; rewrite the template", where, k, str(v))
			case "backup":
				c.note("%s backup: not needed: writes are atomic and a failed one leaves the old file", where)
			case "wait":
				c.note("%s wait: one wait for all outputs (refresh.wait)", where)
			case "create_dest_dirs":
				if b, _ := v.(bool); !b {
					c.note("%s create_dest_dirs = false: missing directories beneath output_root are always created", where)
				}
			case "exec":
				c.note("%s exec: use notify.command (argv, no shell) or the top-level exec block", where)
			default:
				c.note("%s %s: no equivalent", where, k)
			}
		}
		if !has(o, "template") && !has(o, "template_text") {
			c.note("%s: no source or contents; it is left out", where)
			continue
		}
		outs.Content = append(outs.Content, o)
	}
	if len(outs.Content) > 0 {
		set(c.root, "outputs", outs, "")
	}
}

func permsText(v any) string {
	switch x := v.(type) {
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return str(v)
}

func (c *converter) templateConfig(bs []map[string]any) {
	for _, b := range bs {
		for _, k := range sortedKeys(b) {
			v := b[k]
			switch k {
			case "static_secret_render_interval":
				set(section(c.root, "refresh"), "static_interval", scalar(str(v)), "")
			case "exit_on_retry_failure":
				c.note("template_config.exit_on_retry_failure: run --once exits non-zero naming each failed output; the daemon keeps the last good values and reports them on /readyz")
			case "lease_renewal_threshold":
				set(section(c.root, "refresh"), "certificate_renewal", scalar(fmt.Sprint(v)), "leases renew at a random point in 1/3-5/6 of the time left")
			case "max_connections_per_host":
				c.note("template_config.max_connections_per_host: at most 16 Vault requests are in flight")
			default:
				c.note("template_config.%s: no equivalent", k)
			}
		}
	}
}

func (c *converter) wait(where string, bs []map[string]any) {
	for _, b := range bs {
		w := section(section(c.root, "refresh"), "wait")
		for _, k := range sortedKeys(b) {
			switch k {
			case "min", "max":
				set(w, k, scalar(str(b[k])), "")
			default:
				c.note("%s.%s: no equivalent", where, k)
			}
		}
	}
}

// simpleSecret matches an env_template that prints one secret field.
var simpleSecret = regexp.MustCompile(`^\s*\{\{-?\s*with secret "([^"]+)"\s*-?\}\}\s*\{\{-?\s*\.Data\.(data\.)?([A-Za-z0-9_]+)\s*-?\}\}\s*\{\{-?\s*end\s*-?\}\}\s*$`)

func (c *converter) envTemplates(v any) {
	for _, b := range blocks(v) {
		for _, name := range sortedKeys(b) {
			for _, t := range blocks(b[name]) {
				contents := str(t["contents"])
				m := simpleSecret.FindStringSubmatch(contents)
				if m == nil {
					c.note("env_template %q: not one secret field ({{ with secret \"PATH\" }}{{ .Data.data.FIELD }}{{ end }}); declare it as a secret by hand or render it to a file", name)
					continue
				}
				if c.secrets == nil {
					c.secrets = mapping()
				}
				set(c.secrets, name, scalar("vault:"+m[1]+"#"+m[3]), "")
				if c.env == nil {
					c.env = mapping()
					set(section(c.root, "exec"), "env", c.env, "")
				}
				set(c.env, name, scalar(name), "")
				for _, k := range sortedKeys(t) {
					if k != "contents" && k != "error_on_missing_key" {
						c.note("env_template %q %s: no equivalent", name, k)
					}
				}
			}
		}
	}
}

func (c *converter) exec(bs []map[string]any) {
	for _, b := range bs {
		e := section(c.root, "exec")
		for _, k := range sortedKeys(b) {
			v := b[k]
			switch k {
			case "command":
				set(e, "command", command(v), commandComment(v))
			case "restart_on_secret_changes":
				set(e, k, scalar(str(v)), "")
			case "restart_stop_signal", "kill_signal":
				set(e, "kill_signal", scalar(strings.TrimPrefix(str(v), "SIG")), "")
			case "reload_signal":
				set(e, "reload_signal", scalar(strings.TrimPrefix(str(v), "SIG")), "")
			case "kill_timeout", "splay":
				set(e, k, scalar(str(v)), "")
			case "enabled":
			case "env":
				for _, env := range blocks(v) {
					for _, ek := range sortedKeys(env) {
						switch ek {
						case "pristine":
							set(e, "pristine", scalar(fmt.Sprint(env[ek])), "")
						case "allowlist", "whitelist":
							set(e, "env_allow", list(env[ek]), "")
						case "denylist", "blacklist":
							set(e, "env_deny", list(env[ek]), "")
						case "custom":
							c.note("exec.env.custom: set the variables in the broker's own environment (they pass through) or as secrets")
						default:
							c.note("exec.env.%s: no equivalent", ek)
						}
					}
				}
			default:
				c.note("exec.%s: no equivalent", k)
			}
		}
	}
}

func (c *converter) cache(bs []map[string]any) {
	for _, b := range bs {
		for _, k := range sortedKeys(b) {
			switch k {
			case "persist":
				for _, p := range blocks(b[k]) {
					dir := str(p["path"])
					for _, t := range sortedKeys(p) { // persist "kubernetes" { path = ... }
						for _, inner := range blocks(p[t]) {
							if d := str(inner["path"]); d != "" {
								dir = d
							}
						}
					}
					if dir != "" {
						cc := section(c.root, "cache")
						set(cc, "path", scalar(dir), "")
						set(cc, "key", scalar("local"), "seals the entries: local (a key file made with keygen) or awskms:ARN")
					}
				}
			case "use_auto_auth_token":
			default:
				c.note("cache.%s: the broker is not a caching proxy; cache: keeps its own leases across restarts", k)
			}
		}
	}
}

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
