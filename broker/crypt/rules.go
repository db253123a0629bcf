package crypt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// RulesFile is the name of the creation rules file, looked up from a
// secrets file's directory towards the root (SOPS' .sops.yaml).
const RulesFile = ".secrets-broker.yaml"

// maxRulesLen bounds a rules file.
const maxRulesLen = 256 << 10

// Rule picks the keys (and context) a secrets file is sealed with by its
// path, so that encrypt, set and edit need no --key and a production file
// cannot be sealed for the wrong key by accident.
type Rule struct {
	// PathRegex matches the secrets file's path relative to the rules
	// file's directory, with forward slashes.
	PathRegex string `yaml:"path_regex"`
	// Keys are key specs (see secrets-broker --help keys); the first seals.
	Keys []string `yaml:"keys"`
	// Context is the file context of a new file, required of an existing
	// one.
	Context map[string]string `yaml:"context"`

	re *regexp.Regexp
}

// Rules is a parsed rules file.
type Rules struct {
	CreationRules []Rule `yaml:"creation_rules"`

	path string
}

// Match is the rule that applies to a secrets file.
type Match struct {
	Rule
	// Source says where it came from: "FILE, rule N".
	Source string
}

// FindRule looks for the rules file from target's directory up to the
// repository's root (the first directory with .git) or the home
// directory, whichever comes first, and returns the first rule whose
// path_regex matches target, or nil when there is no rules file or no rule
// matches. A rules file another user owns, or that others may write, is
// refused: whoever can write it chooses whom secrets are sealed for.
func FindRule(target string) (*Match, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return nil, err
	}
	home, _ := os.UserHomeDir()
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, RulesFile)
		if fi, err := os.Lstat(p); err == nil {
			if err := trustedRules(p, fi); err != nil {
				return nil, err
			}
			data, err := readlimit.File(p, maxRulesLen, "creation rules "+p)
			if err != nil {
				return nil, err
			}
			rules, err := ParseRules(data, p)
			if err != nil {
				return nil, err
			}
			rel, _ := filepath.Rel(dir, abs)
			return rules.match(filepath.ToSlash(rel)), nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot look for creation rules: %w", err))
		}
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil || dir == home {
			return nil, nil // the repository's root, or home: no further
		}
		if parent := filepath.Dir(dir); parent == dir {
			return nil, nil
		}
	}
}

// trustedRules refuses a rules file that is not a regular file of the
// user's own, or that group or others may write.
func trustedRules(p string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fail.Mark(fail.Usage, fmt.Errorf("creation rules %s is not a regular file (a symlink?): refused", p))
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fail.Mark(fail.Usage, fmt.Errorf("creation rules %s may be written by others (mode %04o), who could choose whom your secrets are sealed for: refused. chmod go-w it, or remove it", p, fi.Mode().Perm()))
	}
	if uid, _, ok := fileowner.Of(fi); ok && uid != os.Getuid() {
		return fail.Mark(fail.Usage, fmt.Errorf("creation rules %s belongs to uid %d, not to you: refused (whoever writes it chooses whom your secrets are sealed for). Remove it or use your own", p, uid))
	}
	return nil
}

// ParseRules reads a rules file strictly (an unknown key is an error).
func ParseRules(data []byte, path string) (*Rules, error) {
	bad := func(format string, args ...any) error {
		return fail.Mark(fail.Usage, fmt.Errorf("creation rules %s: %s", path, fmt.Sprintf(format, args...)))
	}
	if err := readlimit.CheckYAML(data, 10000, "creation rules "+path); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	var r Rules
	if err := dec.Decode(&r); err != nil {
		return nil, bad("%v", err)
	}
	if len(r.CreationRules) == 0 {
		return nil, bad("no creation_rules")
	}
	for i := range r.CreationRules {
		c := &r.CreationRules[i]
		if c.PathRegex == "" || len(c.Keys) == 0 {
			return nil, bad("rule %d needs path_regex and keys", i+1)
		}
		re, err := regexp.Compile(c.PathRegex)
		if err != nil {
			return nil, bad("rule %d: path_regex: %v", i+1, err)
		}
		c.re = re
	}
	r.path = path
	return &r, nil
}

func (r *Rules) match(rel string) *Match {
	for i, c := range r.CreationRules {
		if c.re.MatchString(rel) {
			return &Match{Rule: c, Source: fmt.Sprintf("%s, rule %d", r.path, i+1)}
		}
	}
	return nil
}

// Agree refuses keys named on the command line that are not the rule's:
// the rule is there so that a file is not sealed for the wrong key by
// accident.
func (m *Match) Agree(target string, specs []string) error {
	if len(specs) == 0 || slices.Equal(specs, m.Keys) {
		return nil
	}
	return fail.Mark(fail.Usage, fmt.Errorf("%s matches the creation rule in %s, which seals for %s; --key or $SECRETS_BROKER_KEYS asks for %s. Name the rule's keys, or change the rule", target, m.Source, strings.Join(m.Keys, ", "), strings.Join(specs, ", ")))
}

// CheckContext refuses an existing file whose context lacks the rule's
// pairs, and returns the context for a new one (the rule's and the
// command line's, which must agree).
func (m *Match) CheckContext(target string, have map[string]string, exists bool, given map[string]string) (map[string]string, error) {
	if exists {
		for k, v := range m.Context {
			if have[k] != v {
				return nil, fail.Mark(fail.Usage, fmt.Errorf("%s is sealed with context %s=%q, but the creation rule in %s requires %s=%q: it was sealed outside the rule; check it, then rotate it with the rule's keys and context", target, k, have[k], m.Source, k, v))
			}
		}
		return have, nil
	}
	out := map[string]string{}
	for k, v := range m.Context {
		out[k] = v
	}
	for k, v := range given {
		if w, ok := m.Context[k]; ok && w != v {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("--context %s=%s disagrees with the creation rule in %s (%s=%s)", k, v, m.Source, k, w))
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
