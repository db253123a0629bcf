package templates

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/internal/credenv"
)

// consulTemplateFuncs are consul-template's functions that apply to Vault
// and files, with its names, argument order and results (subtract 1 5 is
// 5 - 1, so that {{ 5 | subtract 1 }} reads naturally). Where a Sprig
// function of the same name exists (add, contains, join, regexMatch,
// regexReplaceAll), consul-template's meaning wins: templates written for
// consul-template and Vault Agent render the same here.
func (t *Template) consulTemplateFuncs(fm template.FuncMap) {
	fm["toLower"] = strings.ToLower
	fm["toUpper"] = strings.ToUpper
	fm["trimSpace"] = strings.TrimSpace
	fm["split"] = func(sep, s string) []string {
		s = strings.TrimSpace(s)
		if s == "" {
			return []string{}
		}
		return strings.Split(s, sep)
	}
	fm["join"] = func(sep string, list any) (string, error) {
		lv := reflect.ValueOf(list)
		if lv.Kind() != reflect.Slice && lv.Kind() != reflect.Array {
			return "", funcErr("join takes a separator and a list")
		}
		parts := make([]string, lv.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(lv.Index(i).Interface())
		}
		return strings.Join(parts, sep), nil
	}
	fm["replaceAll"] = func(old, new, s string) string { return strings.ReplaceAll(s, old, new) }
	fm["regexReplaceAll"] = func(re, repl, s string) (string, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return "", funcErr("the regular expression does not compile")
		}
		return r.ReplaceAllString(s, repl), nil
	}
	fm["regexMatch"] = func(re, s string) (bool, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return false, funcErr("the regular expression does not compile")
		}
		return r.MatchString(s), nil
	}
	fm["in"] = in
	fm["contains"] = func(v, l any) (bool, error) { return in(l, v) }
	fm["containsAll"] = func(v, l any) (bool, error) { return containsSome(v, l, true) }
	fm["containsAny"] = func(v, l any) (bool, error) { return containsSome(v, l, false) }
	fm["containsNone"] = func(v, l any) (bool, error) { ok, err := containsSome(v, l, false); return !ok, err }
	fm["containsNotAll"] = func(v, l any) (bool, error) { ok, err := containsSome(v, l, true); return !ok, err }
	fm["parseBool"] = parseOrZero(strconv.ParseBool, "a boolean")
	fm["parseInt"] = parseOrZero(func(s string) (int64, error) { return strconv.ParseInt(strings.TrimSpace(s), 10, 64) }, "an integer")
	fm["parseUint"] = parseOrZero(func(s string) (uint64, error) { return strconv.ParseUint(strings.TrimSpace(s), 10, 64) }, "an unsigned integer")
	fm["parseFloat"] = parseOrZero(func(s string) (float64, error) { return strconv.ParseFloat(strings.TrimSpace(s), 64) }, "a number")
	fm["parseJSON"] = func(s string) (any, error) {
		if s == "" {
			return map[string]any{}, nil
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, funcErr("the input is not JSON")
		}
		return v, nil
	}
	fm["parseYAML"] = func(s string) (any, error) {
		if s == "" {
			return map[string]any{}, nil
		}
		var v any
		if err := yaml.Unmarshal([]byte(s), &v); err != nil {
			return nil, funcErr("the input is not YAML")
		}
		return v, nil
	}
	fm["loop"] = loop
	fm["add"] = func(b, a any) (any, error) { return arith("add", a, b) }
	fm["subtract"] = func(b, a any) (any, error) { return arith("subtract", a, b) }
	fm["multiply"] = func(b, a any) (any, error) { return arith("multiply", a, b) }
	fm["divide"] = func(b, a any) (any, error) { return arith("divide", a, b) }
	fm["modulo"] = func(b, a any) (any, error) { return arith("modulo", a, b) }
	fm["sha256Hex"] = func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	fm["md5sum"] = func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	fm["timestamp"] = func(format ...string) string {
		now := time.Now().UTC()
		if len(format) == 0 || format[0] == "" {
			return now.Format(time.RFC3339)
		}
		if format[0] == "unix" {
			return strconv.FormatInt(now.Unix(), 10)
		}
		return now.Format(format[0])
	}
	fm["envOrDefault"] = func(name, def string) (string, error) {
		if credenv.IsCredential(name) {
			return "", funcErr("the broker's own credentials are not available to templates")
		}
		if v, ok := os.LookupEnv(name); ok {
			return v, nil
		}
		return def, nil
	}
	fm["executeTemplate"] = func(name string, data ...any) (string, error) {
		var dot any
		if len(data) > 0 {
			dot = data[0]
		}
		var b bytes.Buffer
		if err := t.t.ExecuteTemplate(&b, name, dot); err != nil {
			return "", err
		}
		return b.String(), nil
	}
	for name, why := range unsupportedFuncs {
		fm[name] = func(...any) (string, error) { return "", funcErr("%s", why) }
	}
}

// unsupportedFuncs are consul-template functions secrets-broker does not
// have, and why; Parse refuses templates that call them.
var unsupportedFuncs = func() map[string]string {
	m := map[string]string{}
	consul := "is a Consul function: secrets-broker reads Vault, envelope files and plain files, not Consul"
	for _, f := range []string{"key", "keyExists", "keyOrDefault", "ls", "safeLs", "tree", "safeTree", "service", "services", "connect", "caRoots", "caLeaf",
		"node", "nodes", "datacenters", "checks", "exportedServices", "partitions", "peerings", "byKey", "byTag", "byMeta",
		"nomadService", "nomadServices", "nomadVar", "nomadVarExists", "nomadVarList", "nomadVarListSafe"} {
		m[f] = f + " " + consul
	}
	m["plugin"] = "plugin runs an arbitrary program while rendering; secrets-broker never runs programs from templates (use a notify command)"
	m["writeToFile"] = "writeToFile writes files outside the configured outputs; declare each file as an output instead"
	m["sockaddr"] = "sockaddr reads the host's network configuration, which secrets-broker templates do not see"
	m["explode"] = "explode " + consul + " (it takes Consul KV pairs; explodeMap works on maps)"
	m["byPort"] = "byPort " + consul + " (it groups Consul services)"
	m["spew_dump"] = "spew_dump prints to the broker's own standard output, which is its log, where secret values must never go; use spew_sdump, which writes into the template's output"
	m["spew_printf"] = "spew_printf prints to the broker's own standard output, which is its log, where secret values must never go; use spew_sprintf"
	vetted := map[string]bool{}
	for _, n := range append(slices.Clone(sprigVetted), sprigPrefixedOnly...) {
		vetted[n] = true
	}
	for n := range sprig.HermeticTxtFuncMap() {
		if !vetted[n] {
			m["sprig_"+n] = "sprig_" + n + " is outside the vetted Sprig subset: randomness, dates, key and password generation, encryption and fail are left out, so that output never changes between renders of the same secrets (see docs/config.md)"
		}
	}
	return m
}()

// parseOrZero makes consul-template's parse functions: an empty input is
// the zero value; input parse refuses is an error that does not quote it.
func parseOrZero[T any](parse func(string) (T, error), what string) func(string) (T, error) {
	return func(s string) (T, error) {
		var zero T
		if s == "" {
			return zero, nil
		}
		v, err := parse(s)
		if err != nil {
			return zero, funcErr("the input is not %s", what)
		}
		return v, nil
	}
}

// in reports whether l (a list, or a string) holds v (a string: a
// substring).
func in(l, v any) (bool, error) {
	lv := reflect.ValueOf(l)
	switch lv.Kind() {
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return false, funcErr("in: a string can only contain a string")
		}
		return strings.Contains(lv.String(), s), nil
	case reflect.Slice, reflect.Array:
		for i := range lv.Len() {
			if reflect.DeepEqual(lv.Index(i).Interface(), v) {
				return true, nil
			}
		}
		return false, nil
	case reflect.Invalid:
		return false, nil
	default:
		return false, funcErr("in: cannot look inside a %s", lv.Kind())
	}
}

func containsSome(v, l any, all bool) (bool, error) {
	vv := reflect.ValueOf(v)
	if vv.Kind() != reflect.Slice && vv.Kind() != reflect.Array {
		return false, funcErr("the first argument must be a list")
	}
	for i := range vv.Len() {
		ok, err := in(l, vv.Index(i).Interface())
		if err != nil {
			return false, err
		}
		if ok && !all {
			return true, nil
		}
		if !ok && all {
			return false, nil
		}
	}
	return all, nil
}

// loop is consul-template's loop: loop N (0..N-1) or loop START STOP
// (START..STOP-1), as a list of ints.
func loop(args ...any) ([]int, error) {
	var start, stop int64
	conv := func(a any) (int64, error) {
		switch x := a.(type) {
		case int:
			return int64(x), nil
		case int64:
			return x, nil
		case float64:
			return int64(x), nil
		case string:
			n, err := strconv.ParseInt(x, 10, 64)
			if err != nil {
				return 0, funcErr("loop takes integers")
			}
			return n, nil
		}
		return 0, funcErr("loop takes integers")
	}
	var err error
	switch len(args) {
	case 1:
		stop, err = conv(args[0])
	case 2:
		if start, err = conv(args[0]); err == nil {
			stop, err = conv(args[1])
		}
	default:
		return nil, funcErr("loop takes one or two integers")
	}
	if err != nil {
		return nil, err
	}
	if stop-start > 100000 {
		return nil, funcErr("loop is limited to 100000 steps")
	}
	out := make([]int, 0, max(stop-start, 0))
	for i := start; i < stop; i++ {
		out = append(out, int(i))
	}
	return out, nil
}

// arith does consul-template's arithmetic: integers stay integers, a
// float makes the result a float.
func arith(op string, a, b any) (any, error) {
	num := func(x any) (int64, float64, bool, error) {
		switch v := x.(type) {
		case int:
			return int64(v), 0, false, nil
		case int64:
			return v, 0, false, nil
		case uint64:
			return int64(v), 0, false, nil
		case float64:
			return 0, v, true, nil
		case string:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n, 0, false, nil
			}
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				return 0, f, true, nil
			}
		}
		return 0, 0, false, funcErr("%s takes numbers", op)
	}
	ai, af, aFloat, err := num(a)
	if err != nil {
		return nil, err
	}
	bi, bf, bFloat, err := num(b)
	if err != nil {
		return nil, err
	}
	if aFloat || bFloat {
		if !aFloat {
			af = float64(ai)
		}
		if !bFloat {
			bf = float64(bi)
		}
		switch op {
		case "add":
			return af + bf, nil
		case "subtract":
			return af - bf, nil
		case "multiply":
			return af * bf, nil
		case "divide":
			if bf == 0 {
				return nil, funcErr("division by zero")
			}
			return af / bf, nil
		default:
			return nil, funcErr("modulo takes integers")
		}
	}
	switch op {
	case "add":
		return ai + bi, nil
	case "subtract":
		return ai - bi, nil
	case "multiply":
		return ai * bi, nil
	}
	if bi == 0 {
		return nil, funcErr("division by zero")
	}
	if op == "divide" {
		return ai / bi, nil
	}
	return ai % bi, nil
}
