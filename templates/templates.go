// Package templates owns secrets-broker's templates: Go text/template with
// missingkey=error, the secret function (declared secrets by name, and Vault
// paths as Vault Agent and consul-template templates use them), a vetted set
// of helper functions, a sandboxed file function, static discovery of what a
// template needs (so it can be checked and its secrets fetched before
// rendering, once each), and error messages with every secret value
// replaced by [redacted].
package templates

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/redact"
	"github.com/secrets-broker/secrets-broker/providers/idp"
)

// MaxTemplateLen bounds a template's source.
const MaxTemplateLen = 1 << 20

// MaxFileLen bounds what the file function reads.
const MaxFileLen = 4 << 20

// MaxOutputLen bounds what one template may produce.
const MaxOutputLen = 16 << 20

// Redacted replaces secret values in error messages.
const Redacted = redact.Placeholder

// Options shape parsing.
type Options struct {
	// Declared reports whether name is a declared secret, which
	// `secret "name"` returns as a string.
	Declared func(name string) bool
	// Token reports whether name is an entry of tokens:, which
	// `token "name"` returns.
	Token func(name string) bool
	// FileSandbox is the only directory the file function reads from;
	// empty disables the function.
	FileSandbox string
	// LeftDelim and RightDelim replace {{ and }} (consul-template's
	// left_delimiter and right_delimiter); empty keeps the default.
	LeftDelim, RightDelim string
	// MissingKeyIsEmpty renders a missing map key as consul-template does
	// with error_on_missing_key = false (its default; "<no value>" when
	// printed) instead of failing: an explicit per-output opt-in.
	MissingKeyIsEmpty bool
}

// VaultCall is one `secret "path" "k=v"...` call: a Vault read, or a write
// with parameters.
type VaultCall struct {
	Path   string
	Params map[string]string
	// List is a `secrets "path"` call: the keys under path.
	List bool
	// Write makes the request a write even with no parameters (pkiCert
	// always writes to issue, as consul-template does).
	Write bool
	// Computed marks a call Discover found, whose arguments were computed
	// while rendering: its path may be built from a secret's value, so it
	// is never shown. Key ignores it.
	Computed bool
}

// Key identifies the call's request.
func (c VaultCall) Key() string {
	if c.List {
		return "LIST " + c.Path
	}
	if len(c.Params) == 0 {
		if c.Write {
			return c.Path + "?" // an empty-body write (vault.ParseRef)
		}
		return c.Path
	}
	q := url.Values{}
	for k, v := range c.Params {
		q.Set(k, v)
	}
	return c.Path + "?" + q.Encode()
}

// Template is a parsed template and what it needs.
type Template struct {
	Name string
	// Secrets are the declared secrets it uses, sorted.
	Secrets []string
	// Vault are the Vault paths it reads, sorted by key, each once.
	Vault []VaultCall
	// Dynamic is set when a secret, secrets or pkiCert call takes a
	// computed argument (printf, a variable, a range element): what it
	// reads is found by rendering (Discover), not by reading the source.
	Dynamic bool
	// Tokens are the tokens: entries it uses, sorted.
	Tokens []string

	t       *template.Template
	sandbox string

	// mu serializes executions; cur is the data of the running one, read
	// by the secret function (so executing needs no template clone).
	mu  sync.Mutex
	cur Data
	// scratch is the running render's scratch space (consul-template's
	// scratch), new for each render.
	scratch *Scratch
	// missing, while Discover runs, records the calls cur lacks.
	missing map[string]VaultCall
}

// Data is what a template is rendered with.
type Data struct {
	// Secrets maps declared names to values.
	Secrets map[string]string
	// Vault maps VaultCall keys to Vault's responses.
	Vault map[string]*api.Secret
	// Tokens maps tokens: entries to their current token.
	Tokens map[string]*idp.Token
}

// Parse parses a template and discovers what it needs. Errors name the
// template and line.
func Parse(name, text string, opts Options) (*Template, error) {
	if len(text) > MaxTemplateLen {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("template %s is %d bytes long; the limit is %d", name, len(text), MaxTemplateLen))
	}
	tp := &Template{Name: name, sandbox: opts.FileSandbox}
	missing := "missingkey=error"
	if opts.MissingKeyIsEmpty {
		missing = "missingkey=default"
	}
	t, err := template.New(name).Delims(opts.LeftDelim, opts.RightDelim).Option(missing).Funcs(tp.funcs()).Parse(text)
	if err != nil {
		// text/template says "template: NAME:LINE: ..."; say the name once.
		msg := strings.TrimPrefix(err.Error(), "template: ")
		if rest, ok := strings.CutPrefix(msg, name+":"); ok {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("template %s:%s", name, rest))
		}
		return nil, fail.Mark(fail.Usage, fmt.Errorf("template %s: %s", name, msg))
	}
	tp.t = t
	declared := opts.Declared
	if declared == nil {
		declared = func(string) bool { return false }
	}
	hasToken := opts.Token
	if hasToken == nil {
		hasToken = func(string) bool { return false }
	}
	secrets := map[string]bool{}
	tokens := map[string]bool{}
	vault := map[string]VaultCall{}
	var walkErr error
	for _, tt := range t.Templates() {
		if tt.Tree == nil {
			continue
		}
		walk(tt.Tree.Root, func(cmd *parse.CommandNode) {
			if walkErr != nil {
				return
			}
			id, ok := cmd.Args[0].(*parse.IdentifierNode)
			if ok {
				if why, unsupported := unsupportedFuncs[id.Ident]; unsupported {
					line, _ := tt.Tree.ErrorContext(cmd)
					walkErr = fmt.Errorf("template %s: %s", line, why)
					return
				}
			}
			if ok && id.Ident == "token" {
				line, _ := tt.Tree.ErrorContext(cmd)
				name, literal := tokenArg(cmd)
				switch {
				case !literal:
					walkErr = fmt.Errorf("template %s: token takes the name of a tokens: entry as a quoted string", line)
				case !hasToken(name):
					walkErr = fmt.Errorf("template %s: token %q names no entry of tokens: in the config", line, name)
				default:
					tokens[name] = true
				}
				return
			}
			if !ok || (id.Ident != "secret" && id.Ident != "secrets" && id.Ident != "pkiCert") {
				return
			}
			line, _ := tt.Tree.ErrorContext(cmd)
			var args []string
			for _, a := range cmd.Args[1:] {
				s, ok := a.(*parse.StringNode)
				if !ok {
					tp.Dynamic = true // found by rendering
					return
				}
				args = append(args, s.Text)
			}
			if len(args) == 0 {
				tp.Dynamic = true // a pipeline into secret
				return
			}
			if len(args) == 1 && declared(args[0]) {
				secrets[args[0]] = true
				return
			}
			call, err := vaultCall(args)
			switch id.Ident {
			case "secrets":
				call, err = listCall(args)
			case "pkiCert":
				call, err = pkiCall(args)
			}
			if err != nil {
				walkErr = fmt.Errorf("template %s: %w", line, err)
				return
			}
			vault[call.Key()] = call
		})
	}
	if walkErr != nil {
		return nil, fail.Mark(fail.Usage, walkErr)
	}
	for s := range secrets {
		tp.Secrets = append(tp.Secrets, s)
	}
	sort.Strings(tp.Secrets)
	for n := range tokens {
		tp.Tokens = append(tp.Tokens, n)
	}
	sort.Strings(tp.Tokens)
	keys := make([]string, 0, len(vault))
	for k := range vault {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		tp.Vault = append(tp.Vault, vault[k])
	}
	return tp, nil
}

// tokenArg returns the argument of a token call when it is one quoted
// string.
func tokenArg(cmd *parse.CommandNode) (string, bool) {
	if len(cmd.Args) != 2 {
		return "", false
	}
	s, ok := cmd.Args[1].(*parse.StringNode)
	if !ok {
		return "", false
	}
	return s.Text, true
}

func vaultCall(args []string) (VaultCall, error) {
	path := strings.Trim(args[0], "/")
	if !strings.Contains(path, "/") {
		return VaultCall{}, fmt.Errorf("secret %q is neither a declared secret nor a Vault path (MOUNT/PATH)", args[0])
	}
	c := VaultCall{Path: path}
	for _, kv := range args[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return VaultCall{}, fmt.Errorf("secret %q: parameter %q is not KEY=VALUE", args[0], kv)
		}
		if c.Params == nil {
			c.Params = map[string]string{}
		}
		c.Params[k] = v
	}
	return c, nil
}

// pkiCall is the request of pkiCert: always a write to the issue path.
func pkiCall(args []string) (VaultCall, error) {
	c, err := vaultCall(args)
	c.Write = true
	return c, err
}

// listCall is the request of `secrets "path"`.
func listCall(args []string) (VaultCall, error) {
	if len(args) != 1 {
		return VaultCall{}, errors.New("secrets takes one Vault path to list")
	}
	path := strings.Trim(args[0], "/")
	if path == "" {
		return VaultCall{}, fmt.Errorf("secrets %q is not a Vault path to list (MOUNT/ or MOUNT/PATH/)", args[0])
	}
	return VaultCall{Path: path, List: true}, nil
}

func walk(n parse.Node, visit func(*parse.CommandNode)) {
	switch n := n.(type) {
	case nil:
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walk(c, visit)
		}
	case *parse.ActionNode:
		walk(n.Pipe, visit)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, visit)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, visit)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, visit)
	case *parse.TemplateNode:
		walk(n.Pipe, visit)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walk(c, visit)
		}
	case *parse.CommandNode:
		visit(n)
		for _, a := range n.Args {
			walk(a, visit)
		}
	case *parse.ChainNode:
		walk(n.Node, visit)
	}
}

func walkBranch(b *parse.BranchNode, visit func(*parse.CommandNode)) {
	walk(b.Pipe, visit)
	walk(b.List, visit)
	walk(b.ElseList, visit)
}

// record notes, while Discover runs, a call whose response is missing; it
// reports whether it did (the function then returns nothing, so that a
// `with` skips it, as consul-template does until the data arrives).
func (t *Template) record(args []string, call func([]string) (VaultCall, error)) bool {
	if t.missing == nil || len(args) == 0 {
		return false
	}
	c, err := call(args)
	if err != nil {
		return false
	}
	if _, fetched := t.cur.Vault[c.Key()]; fetched {
		return false
	}
	t.missing[c.Key()] = c
	return true
}

// Discover renders a Dynamic template with d to find the Vault requests its
// computed calls make that d lacks, as consul-template finds them: calls
// whose data is missing return nothing and are recorded, and the output is
// thrown away. Fetch what it returns and call it again until it returns
// nothing. A template that is not Dynamic needs nothing more. Calls that
// are not among the template's literal ones (Vault) are marked Computed.
func (t *Template) Discover(d Data) []VaultCall {
	if !t.Dynamic {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur, t.missing, t.scratch = d, map[string]VaultCall{}, &Scratch{}
	defer func() { t.cur, t.missing, t.scratch = Data{}, nil, nil }()
	var buf bytes.Buffer
	_ = t.t.Execute(&limitedWriter{buf: &buf, max: MaxOutputLen}, nil) // errors are expected until every call has its data
	clear(buf.Bytes())
	keys := make([]string, 0, len(t.missing))
	for k := range t.missing {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	literal := make(map[string]bool, len(t.Vault))
	for _, c := range t.Vault {
		literal[c.Key()] = true
	}
	out := make([]VaultCall, len(keys))
	for i, k := range keys {
		out[i] = t.missing[k]
		out[i].Computed = !literal[k]
	}
	return out
}

// Execute renders the template. An error names the template and line and
// has every secret value replaced by [redacted].
func (t *Template) Execute(d Data) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cur, t.scratch = d, &Scratch{}
	defer func() { t.cur, t.scratch = Data{}, nil }()
	var buf bytes.Buffer
	buf.Grow(256)
	w := &limitedWriter{buf: &buf, max: MaxOutputLen}
	if err := t.t.Execute(w, nil); err != nil {
		clear(buf.Bytes())
		return nil, fail.Mark(fail.Usage, errors.New("template "+Redact(safeMessage(err), d)))
	}
	return buf.Bytes(), nil
}

// funcError is an error of one of this package's template functions. Its
