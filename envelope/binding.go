package envelope

import (
	"encoding/binary"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Limits of format v1. Every length read from untrusted input is checked
// against these before anything is allocated.
const (
	MaxNameLen         = 255
	MaxContextPairs    = 32
	MaxContextKeyLen   = 255
	MaxContextValueLen = 1024
	MaxStanzas         = 16
	MaxKeyIDLen        = 1024
	MaxWrappedKeyLen   = 4096
	MaxPlaintextLen    = 4 << 20
	DataKeySize        = 32
	// MaxCreated bounds the created time, in seconds since the epoch.
	MaxCreated = 1 << 40
)

// ReservedPrefix starts names and context keys that secrets-broker itself uses
// (the manifest of a secrets file; the name in a KMS encryption context).
const ReservedPrefix = "secrets-broker:"

// ManifestName is the name the integrity manifest of a secrets file is sealed
// under.
const ManifestName = ReservedPrefix + "manifest"

// Binding is what a sealed secret is bound to: its logical name and optional
// user context. It is authenticated, never secret: it is stored in the clear in
// the envelope header and is sent to key services (AWS KMS encryption context,
// Vault Transit associated data), where it shows in audit logs. Never put a
// secret value in it.
type Binding struct {
	Name    string
	Context map[string]string
}

// Validate checks a binding that a user chose against the format's rules:
// names and context keys may not use ReservedPrefix.
func (b Binding) Validate() error {
	if err := validName(b.Name); err != nil {
		return err
	}
	if strings.HasPrefix(b.Name, ReservedPrefix) {
		return fmt.Errorf("secret name %q uses the reserved prefix %q", b.Name, ReservedPrefix)
	}
	return validContext(b.Context, true)
}

func validName(name string) error {
	if name == "" {
		return fmt.Errorf("secret name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("secret name is %d bytes long; the limit is %d", len(name), MaxNameLen)
	}
	for i, r := range name {
		if !nameRune(r) {
			return fmt.Errorf("secret name %q has character %q at byte %d; names use letters, digits and . _ - / : @", name, r, i)
		}
	}
	return nil
}

func nameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune("._-/:@", r)
}

func validContext(c map[string]string, user bool) error {
	if len(c) > MaxContextPairs {
		return fmt.Errorf("context has %d pairs; the limit is %d", len(c), MaxContextPairs)
	}
	for k, v := range c {
		if err := validContextPair(k, v); err != nil {
			return err
		}
	}
	return nil
}

// validContextPair checks one context pair: keys are 1 to MaxContextKeyLen
// bytes of letters, digits and . _ - / : @, and never start with
// ReservedPrefix; values are printable UTF-8 (no control, format or escape
// characters), so that inspect and messages show them as they are.
func validContextPair(k, v string) error {
	if k == "" || len(k) > MaxContextKeyLen {
		return fmt.Errorf("context key %q must be 1 to %d bytes long", k, MaxContextKeyLen)
	}
	for i, r := range k {
		if !nameRune(r) {
			return fmt.Errorf("context key %q has character %q at byte %d; context keys use letters, digits and . _ - / : @", k, r, i)
		}
	}
	if strings.HasPrefix(k, ReservedPrefix) {
		return fmt.Errorf("context key %q uses the reserved prefix %q", k, ReservedPrefix)
	}
	if len(v) > MaxContextValueLen {
		return fmt.Errorf("context value for key %q is %d bytes long; the limit is %d", k, len(v), MaxContextValueLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("context value for key %q is not valid UTF-8", k)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("context value for key %q has the unprintable character %U", k, r)
		}
	}
	return nil
}

// keyIDGrammar is what a key id must look like: one grammar for each key
// source this build knows, and for any other "scheme:rest" printable ASCII
// without spaces. Ids are read from untrusted envelopes and printed by
// inspect and in messages, so none may carry control or escape characters.
// They are compiled on first use: their counted repetitions make programs
// of some 200 KB, which a run that opens no envelope need not build.
var keyIDGrammar = sync.OnceValue(func() map[string]*regexp.Regexp {
	return map[string]*regexp.Regexp{
		"local":   regexp.MustCompile(`^local:[0-9a-f]{32}$`),
		"awskms":  regexp.MustCompile(`^awskms:arn:aws[a-z-]{0,16}:kms:[a-z0-9-]{1,32}:[0-9]{12}:key/[A-Za-z0-9-]{1,128}$`),
		"transit": regexp.MustCompile(`^transit:[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$`),
		"":        regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}:[\x21-\x7e]+$`),
	}
})

// ValidKeyID checks a key id against the grammar of its scheme.
func ValidKeyID(id string) error {
	if id == "" || len(id) > MaxKeyIDLen {
		return fmt.Errorf("key id must be 1 to %d bytes long", MaxKeyIDLen)
	}
	scheme, _, _ := strings.Cut(id, ":")
	grammar := keyIDGrammar()
	re, ok := grammar[scheme]
	if !ok {
		re = grammar[""]
	}
	if !re.MatchString(id) {
		if !ok {
			return fmt.Errorf("key id %q is not SCHEME:ID in printable ASCII without spaces", id)
		}
		return fmt.Errorf("key id %q is not a valid %s key id", id, scheme)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Canonical returns the binding's unambiguous byte encoding, used as associated
// data when a key wrapper seals a data key (docs/envelope.md, "Binding").
func (b Binding) Canonical() []byte {
	out := make([]byte, 0, 64+len(b.Name))
	out = append(out, "secrets-broker/binding/v1\x00"...)
	out = append(out, byte(len(b.Name)))
	out = append(out, b.Name...)
	return appendContext(out, b.Context)
}

func appendContext(out []byte, c map[string]string) []byte {
	out = append(out, byte(len(c)))
	for _, k := range sortedKeys(c) {
		v := c[k]
		out = append(out, byte(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(v)))
		out = append(out, v...)
	}
	return out
}

// String describes the binding for error messages: the name and context keys
// are public by design.
func (b Binding) String() string {
	if len(b.Context) == 0 {
		return fmt.Sprintf("%q", b.Name)
	}
	parts := make([]string, 0, len(b.Context))
	for _, k := range sortedKeys(b.Context) {
		parts = append(parts, k+"="+b.Context[k])
	}
	return fmt.Sprintf("%q (context %s)", b.Name, strings.Join(parts, ","))
}

func cloneContext(c map[string]string) map[string]string {
	if len(c) == 0 {
		return nil
	}
	out := make(map[string]string, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}
