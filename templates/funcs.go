package templates

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/template"

	"github.com/BurntSushi/toml"
	"github.com/Masterminds/sprig/v3"
	"github.com/hashicorp/vault/api"
	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/internal/credenv"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"github.com/secrets-broker/secrets-broker/internal/redact"
	"github.com/secrets-broker/secrets-broker/providers/idp"
)

// text never quotes an argument (arguments may derive from secrets; the
// failing call's source text is in the message's location already).
type funcError struct{ msg string }

func (e *funcError) Error() string { return e.msg }

func funcErr(format string, args ...any) error { return &funcError{fmt.Sprintf(format, args...)} }

// builtinSafe are text/template's own functions, whose errors name types
// and indexes, never values.
var builtinSafe = map[string]bool{
	"index": true, "slice": true, "len": true, "eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true,
	"and": true, "or": true, "not": true,
}

// valueMessages are text/template errors that print the value at hand, and
// what each says instead.
var valueMessages = []struct{ prefix, say string }{
	{"if/with can't use ", "if/with can't use this value"},
	{"range can't iterate over ", "range can't iterate over this value (a secret is a string: use it as it is)"},
	{"range over send-only channel ", "range over a send-only channel"},
	{"can't use ", "can't use this value to iterate over more than one variable"},
}

// safeMessage turns an execution error into a sentence that names the
// template, line, column and failing action or function, and drops
// whatever could quote a value: the message of a function that is not
// ours or a builtin (a panic in a regexp helper quotes its argument), and
// text/template's own messages that print the value they were given.
func safeMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	loc, tail, ok := strings.Cut(msg, ">: ")
	if !ok {
		return msg
	}
	loc += ">: "
	if rest, ok := strings.CutPrefix(tail, "error calling "); ok {
		name, _, _ := strings.Cut(rest, ":")
		var fe *funcError
		switch {
		case errors.As(err, &fe):
			return loc + "error calling " + name + ": " + fe.msg
		case builtinSafe[name]:
			return msg
		default:
			return loc + "error calling " + name + ": it failed; its message is withheld because it could quote a secret value"
		}
	}
	for _, vm := range valueMessages {
		if strings.HasPrefix(tail, vm.prefix) {
			return loc + vm.say
		}
	}
	return msg
}

type limitedWriter struct {
	buf *bytes.Buffer
	max int
}

func (w *limitedWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, fmt.Errorf("output is larger than %d bytes", w.max)
	}
	return w.buf.Write(p)
}

// Values lists every secret value in d: declared values and every string in
// every Vault response (nested KV v2 data included), longest first.
func Values(d Data) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, v := range d.Secrets {
		add(v)
	}
	var leaves func(any)
	leaves = func(v any) {
		switch x := v.(type) {
		case string:
			add(x)
		case map[string]any:
			for _, e := range x {
				leaves(e)
			}
		case []any:
			for _, e := range x {
				leaves(e)
			}
		case json.Number:
			add(x.String())
		}
	}
	for _, t := range d.Tokens {
		if t != nil {
			add(t.AccessToken)
		}
	}
	for _, s := range d.Vault {
		if s != nil {
			leaves(s.Data)
			if s.Auth != nil {
				add(s.Auth.ClientToken)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// Redact replaces every secret value of d in msg, in every form
// redact.Forms knows (escaped, encoded, case-changed, line by line).
func Redact(msg string, d Data) string {
	return redact.String(msg, Values(d))
}

func (t *Template) funcs() template.FuncMap {
	fm := template.FuncMap{}
	sp := sprig.TxtFuncMap()
	for _, name := range sprigVetted {
		if f, ok := sp[name]; ok {
			fm[name] = f
			fm["sprig_"+name] = f // consul-template's names for Sprig
		}
	}
	for _, name := range sprigPrefixedOnly {
		if f, ok := sp[name]; ok {
			fm["sprig_"+name] = f
		}
	}
	t.consulTemplateFuncs(fm)
	t.moreConsulTemplateFuncs(fm)
	fm["secret"] = func(args ...string) (any, error) {
		v, err := secretFunc(t.cur)(args...)
		if err != nil && t.record(args, vaultCall) {
			return nil, nil
		}
		return v, err
	}
	fm["secrets"] = func(path string) ([]string, error) {
		v, err := secretsFunc(t.cur, path)
		if err != nil && t.record([]string{path}, listCall) {
			return nil, nil
		}
		return v, err
	}
	fm["pkiCert"] = func(args ...string) (*PKICert, error) {
		v, err := pkiCertFunc(t.cur, args)
		if err != nil && t.record(args, pkiCall) {
			return nil, nil
		}
		return v, err
	}
	fm["token"] = func(name string) (*idp.Token, error) {
		if tok := t.cur.Tokens[name]; tok != nil {
			return tok, nil
		}
		return nil, funcErr("token %q has not been fetched", name)
	}
	fm["env"] = func(name string) (string, error) {
		if credenv.IsCredential(name) {
			return "", funcErr("the broker's own credentials are not available to templates")
		}
		return os.Getenv(name), nil
	}
	fm["base64Encode"] = func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	fm["base64Decode"] = func(s string) (string, error) {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return "", funcErr("the input is not valid base64")
		}
		return string(b), nil
	}
	fm["base64URLEncode"] = func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }
	fm["base64URLDecode"] = func(s string) (string, error) {
		b, err := base64.URLEncoding.DecodeString(s)
		if err != nil {
			return "", funcErr("the input is not valid base64url")
		}
		return string(b), nil
	}
	fm["toJSON"] = func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	}
	fm["toJSONPretty"] = func(v any) (string, error) {
		b, err := json.MarshalIndent(v, "", "  ")
		return string(b), err
	}
	fm["toTOML"] = func(v any) (string, error) {
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(v); err != nil {
			return "", funcErr("the value cannot be written as TOML (a TOML document is a map)")
		}
		return string(bytes.TrimSpace(buf.Bytes())), nil
	}
	fm["toYAML"] = func(v any) (string, error) {
		b, err := yaml.Marshal(v)
		return strings.TrimSuffix(string(b), "\n"), err
	}
	// indent follows consul-template: indent SPACES TEXT.
	fm["indent"] = func(spaces int, s string) (string, error) {
		if spaces < 0 || spaces > 64 {
			return "", funcErr("spaces must be 0 to 64")
		}
		pad := strings.Repeat(" ", spaces)
		return pad + strings.ReplaceAll(s, "\n", "\n"+pad), nil
	}
	fm["shellQuote"] = ShellQuote
	fm["file"] = func(name string) (string, error) {
		if t.sandbox == "" {
			return "", funcErr("file is disabled: set file_sandbox in the config to allow reading files beneath one directory")
		}
		root, err := os.OpenRoot(t.sandbox)
		if err != nil {
			return "", funcErr("cannot open the sandbox %s: %v", t.sandbox, errors.Unwrap(err))
		}
		defer root.Close()
		f, err := root.OpenFile(name, os.O_RDONLY|nonBlocking, 0)
		if err != nil {
			return "", funcErr("cannot read the file beneath the sandbox %s: %v", t.sandbox, errors.Unwrap(err))
		}
		defer f.Close()
		b, err := readlimit.Opened(f, MaxFileLen, "the file")
		if err != nil {
			return "", funcErr("cannot read the file beneath the sandbox %s: %v", t.sandbox, err)
		}
		return string(b), nil
	}
	return fm
}

func secretFunc(d Data) func(args ...string) (any, error) {
	return func(args ...string) (any, error) {
		if len(args) == 1 {
			if v, ok := d.Secrets[args[0]]; ok {
				return v, nil
			}
		}
		if len(args) == 0 {
			return nil, errors.New("secret needs a name or a Vault path")
		}
		call, err := vaultCall(args)
		if err != nil {
			return nil, err
		}
		s, err := d.response(call)
		if err != nil {
			return nil, err
		}
		if len(call.Params) > 0 && s.Data == nil && s.Auth == nil && s.WrapInfo == nil {
			// A write Vault answered with no body (204, a KV v1 write):
			// nothing, as consul-template gives, so {{ with }} skips it.
			return nil, nil
		}
		return s, nil
	}
}

// response is Vault's response to call. A call whose response was not
// fetched is an error that does not quote its path (a computed path may be
// built from a secret).
func (d Data) response(call VaultCall) (*api.Secret, error) {
	s, ok := d.Vault[call.Key()]
	if !ok || s == nil {
		return nil, funcErr("this call's Vault path was not fetched")
	}
	return s, nil
}

// secretsFunc lists the keys under a Vault path, sorted, as
// consul-template's secrets does.
func secretsFunc(d Data, path string) ([]string, error) {
	call, err := listCall([]string{path})
	if err != nil {
		return nil, err
	}
	s, err := d.response(call)
	if err != nil {
		return nil, err
	}
	raw, _ := s.Data["keys"].([]any)
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if ks, ok := k.(string); ok {
			keys = append(keys, ks)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// PKICert is what pkiCert returns: a certificate Vault's PKI engine
// issued, its key, its issuing CA and chain, PEM-encoded (consul-template's
// fields).
type PKICert struct {
	Cert    string
	Key     string
	CA      string
	CAChain []string
}

// pkiCertFunc returns the certificate a `pkiCert "pki/issue/ROLE" "k=v"...`
// call issued. The request is the same as `secret` with those arguments:
// it is made once, and reused across restarts by the restart cache.
func pkiCertFunc(d Data, args []string) (*PKICert, error) {
	if len(args) == 0 {
		return nil, errors.New("pkiCert needs a PKI issue path")
	}
	call, err := pkiCall(args)
	if err != nil {
		return nil, err
	}
	s, err := d.response(call)
	if err != nil {
		return nil, err
	}
	str := func(k string) string { v, _ := s.Data[k].(string); return v }
	c := &PKICert{Cert: str("certificate"), Key: str("private_key"), CA: str("issuing_ca")}
	if chain, ok := s.Data["ca_chain"].([]any); ok {
		for _, e := range chain {
			if pem, ok := e.(string); ok {
				c.CAChain = append(c.CAChain, pem)
			}
		}
	}
	if c.Cert == "" {
		return nil, funcErr("the response holds no certificate: is the path a PKI issue or sign endpoint?")
	}
	return c, nil
}

// ShellQuote quotes s for POSIX shells: single quotes, with ' as '\”.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sprigPrefixedOnly are more pure Sprig functions, available under
// consul-template's sprig_ names only (unprefixed, several of these names
// mean something else in consul-template: split, indent, ...).
var sprigPrefixedOnly = []string{
	"abbrev", "abbrevboth", "add1", "add1f", "addf", "adler32sum", "all", "any", "append", "biggest", "camelcase", "ceil", "chunk",
	"compact", "concat", "deepCopy", "deepEqual", "dig", "divf", "floor", "has", "indent", "initial", "initials", "kebabcase",
	"kindIs", "kindOf", "max", "maxf", "merge", "mergeOverwrite", "min", "minf", "mulf", "mustAppend", "mustChunk", "mustCompact",
	"mustFirst", "mustFromJson", "mustHas", "mustInitial", "mustLast", "mustMerge", "mustMergeOverwrite", "mustPrepend", "mustPush",
	"mustRegexFind", "mustRegexFindAll", "mustRegexMatch", "mustRegexReplaceAll", "mustRegexReplaceAllLiteral", "mustRegexSplit",
	"mustRest", "mustReverse", "mustSlice", "mustToJson", "mustToPrettyJson", "mustToRawJson", "mustUniq", "mustWithout", "pluck",
	"plural", "prepend", "push", "regexFindAll", "regexQuoteMeta", "regexReplaceAllLiteral", "regexSplit", "repeat", "rest",
	"reverse", "round", "semver", "semverCompare", "seq", "set", "sha512sum", "slice", "snakecase", "split", "splitn", "subf",
	"swapcase", "toDecimal", "toRawJson", "toStrings", "trimall", "tuple", "typeIs", "typeIsLike", "typeOf", "unset", "until",
	"untilStep", "untitle", "urlJoin", "urlParse", "values", "without", "wrap", "wrapWith", "base", "clean", "dir", "ext", "isAbs",
}

// sprigVetted are the Sprig functions templates get: pure string, list and
// encoding helpers. Left out on purpose: env/expandenv (our env guards the
// broker's credentials), network (getHostByName), randomness, dates and
// key generation (output would change on every render and restart the
// app), and anything touching files.
var sprigVetted = []string{
	"trim", "trimAll", "trimPrefix", "trimSuffix", "upper", "lower", "title", "replace",
	"contains", "hasPrefix", "hasSuffix", "substr", "trunc", "nospace", "quote", "squote",
	"cat", "nindent", "default", "empty", "coalesce", "ternary", "toString", "join", "splitList",
	"list", "dict", "get", "hasKey", "keys", "pick", "omit", "sortAlpha", "uniq", "first", "last",
	"b64enc", "b64dec", "b32enc", "b32dec", "sha1sum", "sha256sum", "toJson", "toPrettyJson",
	"fromJson", "regexMatch", "regexReplaceAll", "regexFind", "add", "sub", "mul", "div", "mod",
	"atoi", "int", "int64", "float64", "len",
}
