package templates

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"text/template"

	"dario.cat/mergo"
	"github.com/davecgh/go-spew/spew"
	"golang.org/x/text/cases"
	"golang.org/x/text/language"

	"github.com/secrets-broker/secrets-broker/internal/credenv"
)

// moreConsulTemplateFuncs are the rest of consul-template's functions that
// need neither Consul nor Nomad, with its names, argument order, results
// and errors: where a Sprig function has the same name (trim), consul-
// template's wins and Sprig's stays under sprig_, as there.
func (t *Template) moreConsulTemplateFuncs(fm template.FuncMap) {
	fm["trim"] = func(cutset, s string) string { return strings.Trim(s, cutset) }
	fm["trimPrefix"] = func(prefix, s string) string { return strings.TrimPrefix(s, prefix) }
	fm["trimSuffix"] = func(suffix, s string) string { return strings.TrimSuffix(s, suffix) }
	fm["toTitle"] = func(s string) string { return cases.Title(language.Und, cases.NoLower).String(s) }
	fm["hmacSHA256Hex"] = func(message, key string) string {
		h := hmac.New(sha256.New, []byte(key))
		h.Write([]byte(message))
		return hex.EncodeToString(h.Sum(nil))
	}
	fm["mustEnv"] = func(name string) (string, error) {
		if credenv.IsCredential(name) {
			return "", funcErr("the broker's own credentials are not available to templates")
		}
		if v := os.Getenv(name); v != "" {
			return v, nil
		}
		return "", funcErr("required environment variable %s is empty", name)
	}
	fm["splitToMap"] = func(sep1, sep2, s string) map[string]string {
		m := map[string]string{}
		s = strings.TrimSpace(s)
		if s == "" {
			return m
		}
		for _, item := range strings.Split(s, sep1) {
			if k, v, ok := strings.Cut(item, sep2); ok {
				m[k] = v
			}
		}
		return m
	}
	unescaped := func(indent string) func(any) (string, error) {
		return func(v any) (string, error) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", indent)
			if err := enc.Encode(v); err != nil {
				return "", funcErr("the value cannot be written as JSON")
			}
			return strings.TrimRight(buf.String(), "\r\n"), nil
		}
	}
	fm["toUnescapedJSON"] = unescaped("")
	fm["toUnescapedJSONPretty"] = unescaped("  ")
	fm["explodeMap"] = explodeMap
	fm["mergeMap"] = func(dst, src map[string]any) (map[string]any, error) {
		if err := mergo.Map(&dst, src); err != nil {
			return nil, funcErr("the maps cannot be merged")
		}
		return dst, nil
	}
	fm["mergeMapWithOverride"] = func(dst, src map[string]any) (map[string]any, error) {
		if err := mergo.Map(&dst, src, mergo.WithOverride); err != nil {
			return nil, funcErr("the maps cannot be merged")
		}
		return dst, nil
	}
	fm["minimum"] = func(b, a any) (any, error) { return pick("minimum", a, b, func(c int) bool { return c < 0 }) }
	fm["maximum"] = func(b, a any) (any, error) { return pick("maximum", a, b, func(c int) bool { return c > 0 }) }
	fm["spew_sdump"] = func(args ...any) string { return spew.Sdump(args...) }
	fm["spew_sprintf"] = func(format string, args ...any) string { return spew.Sprintf(format, args...) }
	fm["scratch"] = func() *Scratch { return t.scratch }
}

// number is a template value as consul-template's math reads it.
type number struct {
	kind byte // 'i', 'u' or 'f'
	i    int64
	u    uint64
	f    float64
}

func numberOf(v any) (number, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return number{kind: 'i', i: rv.Int()}, true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return number{kind: 'u', u: rv.Uint()}, true
	case reflect.Float32, reflect.Float64:
		return number{kind: 'f', f: rv.Float()}, true
	}
	return number{}, false
}

func (n number) value() any {
	switch n.kind {
	case 'i':
		return n.i
	case 'u':
		return n.u
	}
	return n.f
}

// compare orders a and b as consul-template does: integers of either
// sign as int64, anything with a float as float64.
func compare(a, b number) int {
	switch {
	case a.kind == 'f' || b.kind == 'f':
		af, bf := a.asFloat(), b.asFloat()
		return cmpOrdered(af, bf)
	case a.kind == 'u' && b.kind == 'u':
		return cmpOrdered(a.u, b.u)
	}
	return cmpOrdered(a.asInt(), b.asInt())
}

func (n number) asFloat() float64 {
	switch n.kind {
	case 'i':
		return float64(n.i)
	case 'u':
		return float64(n.u)
	}
	return n.f
}

func (n number) asInt() int64 {
	if n.kind == 'u' {
		return int64(n.u)
	}
	return n.i
}

func cmpOrdered[T int64 | uint64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pick returns a when wins(compare(a, b)), else b (consul-template's
// minimum and maximum: minimum 5 3 is 3, and a tie gives b).
func pick(name string, a, b any, wins func(int) bool) (any, error) {
	an, ok := numberOf(a)
	if !ok {
		return nil, funcErr("%s: %T is not a number", name, a)
	}
	bn, ok := numberOf(b)
	if !ok {
		return nil, funcErr("%s: %T is not a number", name, b)
	}
	if wins(compare(an, bn)) {
		return an.value(), nil
	}
	return bn.value(), nil
}

// explodeMap turns keys with "/" into nested maps, in key order: a/b: x
// becomes a: {b: x}. A key that is both a value and a parent is an error.
func explodeMap(in map[string]any) (map[string]any, error) {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]any{}
	for _, k := range keys {
		m := out
		parts := strings.Split(k, "/")
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p]
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			nm, ok := next.(map[string]any)
			if !ok {
				return nil, funcErr("explodeMap: %q is a value and a parent of %q", p, k)
			}
			m = nm
		}
		if last := parts[len(parts)-1]; last != "" {
			m[last] = in[k]
		}
	}
	return out, nil
}

// Scratch is consul-template's per-render scratch space: values a
// template sets and reads back within one render.
type Scratch struct {
	mu     sync.Mutex
	values map[string]any
}

func (s *Scratch) vals() map[string]any {
	if s.values == nil {
		s.values = map[string]any{}
	}
	return s.values
}

// Key reports whether k is set.
func (s *Scratch) Key(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.vals()[k]
	return ok
}

// Get returns the value of k, or nil.
func (s *Scratch) Get(k string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vals()[k]
}

// Set sets k to v.
func (s *Scratch) Set(k string, v any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vals()[k] = v
	return ""
}

// SetX sets k to v unless k is set.
func (s *Scratch) SetX(k string, v any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vals()[k]; !ok {
		s.vals()[k] = v
	}
	return ""
}

// MapSet sets key mk of the map named k to v.
func (s *Scratch) MapSet(k, mk string, v any) (string, error) { return s.mapSet(k, mk, v, true) }

// MapSetX is MapSet that keeps an existing mk.
func (s *Scratch) MapSetX(k, mk string, v any) (string, error) { return s.mapSet(k, mk, v, false) }

func (s *Scratch) mapSet(k, mk string, v any, overwrite bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vals()[k]; !ok {
		s.vals()[k] = map[string]any{}
	}
	m, ok := s.vals()[k].(map[string]any)
	if !ok {
		return "", funcErr("%q is not a map", k)
	}
	if _, set := m[mk]; overwrite || !set {
		m[mk] = v
	}
	return "", nil
}

// MapValues returns the values of the map named k, by key.
func (s *Scratch) MapValues(k string) ([]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.vals()[k].(map[string]any)
	if !ok {
		return nil, nil
	}
	keys := make([]string, 0, len(m))
	for mk := range m {
		keys = append(keys, mk)
	}
	sort.Strings(keys)
	out := make([]any, len(keys))
	for i, mk := range keys {
		out[i] = m[mk]
	}
	return out, nil
}
