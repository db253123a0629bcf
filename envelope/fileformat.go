package envelope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// MarshalYAML returns the file as YAML, entries in order, with a header comment.
func (f *File) MarshalYAML() []byte {
	var buf bytes.Buffer
	buf.WriteString("# secrets-broker secrets file, format v1 (docs/envelope.md).\n")
	buf.WriteString("# Names are public; each value is sealed under its own data key.\n")
	buf.WriteString("# Edit with 'secrets-broker encrypt --file', never by hand: the integrity tag\n# covers every entry.\n")
	buf.WriteString("version: 1\nentries:\n")
	for _, e := range f.Entries {
		fmt.Fprintf(&buf, "  %s: %s\n", yamlKey(e.Name), e.Envelope.String())
	}
	if len(f.Entries) == 0 {
		buf.Truncate(buf.Len() - 1)
		buf.WriteString(" {}\n")
	}
	fmt.Fprintf(&buf, "integrity: %s\n", f.Integrity.String())
	return buf.Bytes()
}

func yamlKey(name string) string {
	// Names use only [A-Za-z0-9._-/:@]; quote those YAML would read as
	// something else (numbers, booleans, null, a leading @ or :).
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(name), &n); err == nil && len(n.Content) == 1 &&
		n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!str" && n.Content[0].Value == name && !strings.ContainsAny(name, ":@") {
		return name
	}
	return strconv.Quote(name)
}

// MarshalJSON returns the file as JSON, entries in order.
func (f *File) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("{\n  \"version\": 1,\n  \"entries\": {")
	for i, e := range f.Entries {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(e.Name)
		fmt.Fprintf(&buf, "\n    %s: %q", k, e.Envelope.String())
	}
	if len(f.Entries) > 0 {
		buf.WriteString("\n  ")
	}
	fmt.Fprintf(&buf, "},\n  \"integrity\": %q\n}\n", f.Integrity.String())
	return buf.Bytes(), nil
}

// ParseFile reads a secrets file in YAML or JSON. path is used in error
// messages, which name the line of the problem.
//
// The YAML form secrets-broker writes is read line by line and JSON with a
// streaming decoder, keeping the memory used to about twice the file's size;
// YAML in any other layout goes through a YAML parser, whose tree is
// bounded (MaxFileNodes) before it is built.
func ParseFile(data []byte, path string) (*File, error) {
	f := &File{Path: path}
	ferr := func(line int, format string, args ...any) error {
		loc := f.where()
		if line > 0 {
			loc = fmt.Sprintf("%s, line %d", loc, line)
		}
		return fail.Mark(fail.Format, fmt.Errorf("%s: %s", loc, fmt.Sprintf(format, args...)))
	}
	if len(data) > MaxFileLen {
		return nil, ferr(0, "file is %d bytes long; the limit is %d", len(data), MaxFileLen)
	}
	raw, ok := scanCanonical(data)
	if !ok {
		if len(data) > MaxFreeFormLen {
			return nil, ferr(0, "file is %d bytes long and not in the layout secrets-broker writes; a secrets file over %d bytes must be (run 'secrets-broker rotate' or 'encrypt --file' to write it again)", len(data), MaxFreeFormLen)
		}
		var err error
		if first := bytes.TrimLeft(data, " \t\r\n"); len(first) > 0 && first[0] == '{' {
			raw, err = scanJSON(data, ferr)
		} else {
			if err := readlimit.CheckYAML(data, MaxFileNodes, f.where()); err != nil {
				return nil, err
			}
			raw, err = scanYAML(data, ferr)
		}
		if err != nil {
			return nil, err
		}
	}
	return f.build(raw, ferr)
}

// MaxFreeFormLen bounds a secrets file that is not in the layout
// MarshalYAML or MarshalJSON writes (edited by hand, reformatted): such a
// file goes through a general parser, which takes several times the file's
// size in memory.
const MaxFreeFormLen = 1 << 20

// rawFile is a secrets file's text split into its parts, not yet checked.
type rawFile struct {
	version, hasEntries, hasIntegrity bool
	entries                           []rawEntry
	integrity                         []byte
	integrityLine                     int
}

type rawEntry struct {
	name          string
	value         []byte
	line, valLine int
}

type errorf func(line int, format string, args ...any) error

func (f *File) build(raw *rawFile, ferr errorf) (*File, error) {
	for _, want := range []struct {
		name string
		ok   bool
	}{{"version", raw.version}, {"entries", raw.hasEntries}, {"integrity", raw.hasIntegrity}} {
		if !want.ok {
			return nil, ferr(0, "missing key %q", want.name)
		}
	}
	m, err := parseText(raw.integrity)
	if err != nil {
		return nil, ferr(raw.integrityLine, "integrity: %v", err)
	}
	if m.Name != ManifestName {
		return nil, ferr(raw.integrityLine, "integrity is sealed for %q, not the manifest", m.Name)
	}
	f.Integrity = m
	if len(raw.entries) > MaxEntries {
		return nil, ferr(0, "%d entries; the limit is %d", len(raw.entries), MaxEntries)
	}
	names := make(map[string]bool, len(raw.entries))
	f.Entries = make([]Entry, 0, len(raw.entries))
	for i := range raw.entries {
		r := &raw.entries[i]
		if names[r.name] {
			return nil, ferr(r.line, "secret %q appears twice", r.name)
		}
		names[r.name] = true
		e, err := parseText(r.value)
		r.value = nil
		if err != nil {
			return nil, ferr(r.valLine, "secret %q: %v", r.name, err)
		}
		if e.Name != r.name {
			return nil, fail.Mark(fail.Integrity, fmt.Errorf("%s, line %d: secret %q: %w: the value is sealed for secret %q", f.where(), r.line, r.name, ErrDecrypt, e.Name))
		}
		f.Entries = append(f.Entries, Entry{Name: r.name, Envelope: e, line: r.line})
	}
	return f, nil
}

// scanCanonical reads the layouts MarshalYAML and MarshalJSON write, line
// by line, keeping values as slices of data (no copy). It reports false for
// any other layout, which then goes to a general parser; FuzzCanonicalScan
// checks that it never reads a file differently from those parsers.
func scanCanonical(data []byte) (*rawFile, bool) {
	if bytes.HasPrefix(data, []byte("{\n")) {
		return scanCanonicalJSON(data)
	}
	return scanCanonicalYAML(data)
}

// scanCanonicalYAML reads comments, "version: 1", "entries:" followed by
// two-space indented NAME: VALUE lines (or "entries: {}"), and
// "integrity: VALUE"; NAME plain or double-quoted, VALUE the text form,
// plain or quoted.
func scanCanonicalYAML(data []byte) (*rawFile, bool) {
	r := &rawFile{}
	inEntries, emptyBlock := false, false
	line := 0
	for len(data) > 0 {
		var ln []byte
		ln, data, _ = bytes.Cut(data, []byte("\n"))
		line++
		if len(ln) == 0 {
			continue
		}
		if ln[0] == '#' {
			if !printableComment(ln) {
				return nil, false
			}
			continue
		}
		if inEntries && bytes.HasPrefix(ln, []byte("  ")) {
			name, value, ok := canonicalPair(ln[2:])
			if !ok || !textValue(value) {
				return nil, false
			}
			r.entries = append(r.entries, rawEntry{name: name, value: value, line: line, valLine: line})
			continue
		}
		inEntries = false
		switch {
		case string(ln) == "version: 1" && !r.version:
			r.version = true
		case string(ln) == "entries:" && !r.hasEntries:
			// YAML reads a bare "entries:" with nothing under it as null.
			r.hasEntries, inEntries, emptyBlock = true, true, true
		case string(ln) == "entries: {}" && !r.hasEntries:
			r.hasEntries = true
		case bytes.HasPrefix(ln, []byte("integrity: ")) && !r.hasIntegrity:
			key, value, ok := canonicalPair(ln)
			if !ok || key != "integrity" || !textValue(value) {
				return nil, false
			}
			r.hasIntegrity, r.integrity, r.integrityLine = true, value, line
		default:
			return nil, false
		}
	}
	return r, r.version && r.hasEntries && r.hasIntegrity && !(emptyBlock && len(r.entries) == 0)
}

// scanCanonicalJSON reads exactly the lines MarshalJSON writes.
func scanCanonicalJSON(data []byte) (*rawFile, bool) {
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	n := len(lines)
	if n < 5 || string(lines[0]) != "{" || string(lines[1]) != `  "version": 1,` || string(lines[n-1]) != "}" {
		return nil, false
	}
	r := &rawFile{version: true, hasEntries: true, hasIntegrity: true}
	integrity, ok := bytes.CutPrefix(lines[n-2], []byte(`  "integrity": "`))
	if !ok || !bytes.HasSuffix(integrity, []byte(`"`)) || !textValue(integrity[:len(integrity)-1]) {
		return nil, false
	}
	r.integrity, r.integrityLine = integrity[:len(integrity)-1], n-1
	switch {
	case n == 5 && string(lines[2]) == `  "entries": {},`:
		return r, true
	case n >= 7 && string(lines[2]) == `  "entries": {` && string(lines[n-3]) == "  },":
	default:
		return nil, false
	}
	for i := 3; i < n-3; i++ {
		ln, ok := bytes.CutPrefix(lines[i], []byte("    "))
		if !ok {
			return nil, false
		}
		if i < n-4 {
			if ln, ok = bytes.CutSuffix(ln, []byte(",")); !ok {
				return nil, false
			}
		}
		if len(ln) < 2 || ln[0] != '"' || ln[len(ln)-1] != '"' || bytes.HasSuffix(ln, []byte(`": "`)) {
			return nil, false
		}
		name, value, ok := canonicalPair(ln)
		if !ok || !textValue(value) {
			return nil, false
		}
		r.entries = append(r.entries, rawEntry{name: name, value: value, line: i + 1, valLine: i + 1})
	}
	return r, true
}

// printableComment is a comment YAML accepts: valid UTF-8, printable or tab.
func printableComment(ln []byte) bool {
	if !utf8.Valid(ln) {
		return false
	}
	for _, r := range string(ln) {
		if r != '\t' && (!unicode.IsPrint(r) || r == '\ufeff') {
			return false
		}
	}
	return true
}

// textValue is the text form: the prefix and a non-empty base64url body
// (no ':' or space that YAML could read as structure).
func textValue(v []byte) bool {
	body, ok := bytes.CutPrefix(v, []byte(TextPrefix))
	if !ok || len(body) == 0 {
		return false
	}
	for _, c := range body {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// canonicalPair splits KEY: VALUE; KEY is plain or double-quoted, VALUE a
// number, plain, or double- or single-quoted text of the text form's
// alphabet (nothing any YAML or JSON reader would read differently).
func canonicalPair(ln []byte) (string, []byte, bool) {
	var key string
	var rest []byte
	if len(ln) > 0 && ln[0] == '"' {
		end := bytes.IndexByte(ln[1:], '"')
		if end < 0 || bytes.IndexByte(ln[:end+2], '\\') >= 0 {
			return "", nil, false
		}
		key, rest = string(ln[1:end+1]), ln[end+2:]
		for _, c := range []byte(key) {
			if !nameRune(rune(c)) {
				return "", nil, false
			}
		}
	} else {
		i := bytes.IndexByte(ln, ':')
		if i <= 0 {
			return "", nil, false
		}
		key, rest = string(ln[:i]), ln[i:]
		for _, c := range []byte(key) {
			if !nameRune(rune(c)) || c == ':' || c == '@' {
				return "", nil, false
			}
		}
	}
	value, ok := bytes.CutPrefix(rest, []byte(": "))
	if !ok || key == "" {
		return "", nil, false
	}
	if n := len(value); n >= 2 && (value[0] == '"' && value[n-1] == '"' || value[0] == '\'' && value[n-1] == '\'') {
		value = value[1 : n-1]
	}
	if len(value) == 0 {
		return "", nil, false
	}
	for _, c := range value {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == '{') {
			return "", nil, false
		}
	}
	return key, value, true
}

// scanJSON reads the JSON form with a streaming decoder, refusing unknown
// and repeated keys.
func scanJSON(data []byte, ferr errorf) (*rawFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	lineAt := func() int { return bytes.Count(data[:dec.InputOffset()], []byte("\n")) + 1 }
	bad := func(format string, args ...any) error { return ferr(lineAt(), format, args...) }
	delim := func(want json.Delim) error {
		tok, err := dec.Token()
		if err != nil {
			return bad("not valid JSON: %v", err)
		}
		if d, ok := tok.(json.Delim); !ok || d != want {
			return bad("expected %q", string(want))
		}
		return nil
	}
	str := func(what string) (string, error) {
		tok, err := dec.Token()
		if err != nil {
			return "", bad("not valid JSON: %v", err)
		}
		s, ok := tok.(string)
		if !ok {
			return "", bad("%s must be a string", what)
		}
		return s, nil
	}
	if err := delim('{'); err != nil {
		return nil, err
	}
	r := &rawFile{}
	for dec.More() {
		key, err := str("keys")
		if err != nil {
			return nil, err
		}
		keyLine := lineAt()
		switch key {
		case "version":
			tok, err := dec.Token()
			if err != nil {
				return nil, bad("not valid JSON: %v", err)
			}
			if r.version || fmt.Sprint(tok) != "1" {
				return nil, ferr(keyLine, "version %v is not supported by this build (it reads version 1), or is given twice", tok)
			}
			r.version = true
		case "entries":
			if r.hasEntries {
				return nil, ferr(keyLine, "key %q appears twice", key)
			}
			r.hasEntries = true
			if err := delim('{'); err != nil {
				return nil, err
			}
			for dec.More() {
				name, err := str("secret names")
				if err != nil {
					return nil, err
				}
				line := lineAt()
				value, err := str("sealed values (sbe1:...)")
				if err != nil {
					return nil, err
				}
				if len(r.entries) >= MaxEntries {
					return nil, ferr(line, "more than %d entries", MaxEntries)
				}
				r.entries = append(r.entries, rawEntry{name: name, value: []byte(value), line: line, valLine: line})
			}
			if err := delim('}'); err != nil {
				return nil, err
			}
		case "integrity":
			if r.hasIntegrity {
				return nil, ferr(keyLine, "key %q appears twice", key)
			}
			value, err := str("integrity")
			if err != nil {
				return nil, err
			}
			r.hasIntegrity, r.integrity, r.integrityLine = true, []byte(value), keyLine
		default:
			return nil, ferr(keyLine, "unknown key %q (expected version, entries, integrity)", key)
		}
	}
	if err := delim('}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("unexpected data after the closing }")
	}
	return r, nil
}

// scanYAML reads any other YAML layout through the YAML parser.
func scanYAML(data []byte, ferr errorf) (*rawFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, ferr(0, "not valid YAML or JSON: %v", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, ferr(0, "expected a mapping with keys version, entries and integrity")
	}
	root := doc.Content[0]
	r := &rawFile{}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, ferr(k.Line, "keys must be plain strings")
		}
		if seen[k.Value] {
			return nil, ferr(k.Line, "key %q appears twice", k.Value)
		}
		seen[k.Value] = true
		switch k.Value {
		case "version":
			if v.Kind != yaml.ScalarNode || v.Value != "1" {
				return nil, ferr(v.Line, "version %q is not supported by this build (it reads version 1)", v.Value)
			}
			r.version = true
		case "entries":
			if v.Kind != yaml.MappingNode {
				return nil, ferr(v.Line, "entries must be a mapping of names to sealed values")
			}
			r.hasEntries = true
			for j := 0; j+1 < len(v.Content); j += 2 {
				ek, ev := v.Content[j], v.Content[j+1]
				if ek.Kind != yaml.ScalarNode || ev.Kind != yaml.ScalarNode {
					return nil, ferr(ek.Line, "each entry must be a name and a sealed value (sbe1:...)")
				}
				r.entries = append(r.entries, rawEntry{name: ek.Value, value: []byte(ev.Value), line: ek.Line, valLine: ev.Line})
				ev.Value = ""
			}
		case "integrity":
			if v.Kind != yaml.ScalarNode {
				return nil, ferr(v.Line, "integrity must be a sealed value (sbe1:...)")
			}
			r.hasIntegrity, r.integrity, r.integrityLine = true, []byte(v.Value), v.Line
		default:
			return nil, ferr(k.Line, "unknown key %q (expected version, entries, integrity)", k.Value)
		}
	}
	return r, nil
}
