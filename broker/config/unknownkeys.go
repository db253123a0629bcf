package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// configSections names, for each config type, where its keys are written
// and which keys it has, for messages about unknown keys.
func configSections() map[string]struct {
	where string
	typ   reflect.Type
} {
	type section = struct {
		where string
		typ   reflect.Type
	}
	return map[string]section{
		"Config":      {"at the top level", reflect.TypeFor[Config]()},
		"Vault":       {"under vault", reflect.TypeFor[Vault]()},
		"Auth":        {"under vault.auth", reflect.TypeFor[Auth]()},
		"Output":      {"in an output", reflect.TypeFor[Output]()},
		"Notify":      {"under notify", reflect.TypeFor[Notify]()},
		"Refresh":     {"under refresh", reflect.TypeFor[Refresh]()},
		"KeyCache":    {"under key_cache", reflect.TypeFor[KeyCache]()},
		"Exec":        {"under exec", reflect.TypeFor[Exec]()},
		"Cache":       {"under cache", reflect.TypeFor[Cache]()},
		"SecretsFile": {"in a secrets_files entry", reflect.TypeFor[SecretsFile]()},
	}
}

// yamlKeys lists the keys a struct type reads.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

var unknownFieldRE = regexp.MustCompile(`field (\S+) not found in type ([\w.]+)`)

// explainUnknownKeys rewrites the YAML decoder's "field X not found in type
// broker.T" into where the key was and the closest known key, without Go
// type names.
func explainUnknownKeys(msg string) string {
	sections := configSections()
	return unknownFieldRE.ReplaceAllStringFunc(msg, func(m string) string {
		sub := unknownFieldRE.FindStringSubmatch(m)
		key, typ := sub[1], sub[2]
		typ = typ[strings.LastIndexByte(typ, '.')+1:]
		s, ok := sections[typ]
		if !ok {
			return fmt.Sprintf("unknown key %q", key)
		}
		known := yamlKeys(s.typ)
		out := fmt.Sprintf("unknown key %q %s", key, s.where)
		if best := closest(key, known); best != "" {
			return out + fmt.Sprintf("; did you mean %q?", best)
		}
		return out + " (known keys: " + strings.Join(known, ", ") + ")"
	})
}

// closest is the known key nearest to key by edit distance, when it is
// near enough to be a likely typo.
func closest(key string, known []string) string {
	best, bestD := "", len(key)/3+2
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
