package crypt

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// Update applies changes to a secrets file (see envelope.File.Update):
// untouched entries stay byte for byte, changed and new ones are sealed
// with seal, the manifest is sealed again.
func (s *Sealed) Update(ctx context.Context, open, seal []envelope.KeyWrapper, changes []envelope.Change) (*Sealed, error) {
	if s.File == nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("set, unset and edit work on secrets files; this is a single envelope: seal a new one with encrypt --name"))
	}
	f, err := s.File.Update(ctx, open, changes, seal...)
	if err != nil {
		return nil, err
	}
	return &Sealed{File: f}, nil
}

// NewFile is an empty secrets file sealed with seal, for set and edit of a
// file that does not exist yet.
func NewFile(ctx context.Context, path string, fileContext map[string]string, seal []envelope.KeyWrapper) (*Sealed, error) {
	f, err := envelope.SealFile(ctx, nil, fileContext, seal...)
	if err != nil {
		return nil, err
	}
	f.Path = path
	return &Sealed{File: f}, nil
}

// FormatOf is the format a secrets file is written back in: JSON when it
// was JSON (or, new, is named .json), else YAML.
func FormatOf(data []byte, path string) Format {
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "{") || (len(trimmed) == 0 && strings.EqualFold(extension(path), ".json")) {
		return FormatJSON
	}
	return FormatYAML
}

func extension(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 && !strings.ContainsRune(path[i:], os.PathSeparator) {
		return path[i:]
	}
	return ""
}

// CheckImplicitSealKeys refuses to add data keys to an existing file with
// the default key when the file's entries are wrapped for other keys too:
// a teammate whose key the file lists could not open the new entry. The
// user names the keys instead (the file never chooses them).
func CheckImplicitSealKeys(s *Sealed, seal []envelope.KeyWrapper, path string) error {
	have := map[string]bool{}
	for _, w := range seal {
		have[w.KeyID()] = true
	}
	var missing []string
	for _, id := range s.KeyIDs() {
		if !have[id] {
			missing = append(missing, "--key "+id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return fail.Mark(fail.Usage, fmt.Errorf("%s is sealed for keys besides the default local key; new entries are sealed only for keys you name (the file's list is not authenticated, so it never chooses): pass them, e.g. %s (or set $SECRETS_BROKER_KEYS, or a creation rule)", path, strings.Join(missing, " ")))
}

// DescribeChange prints, for a dry run, what turning before into after
// changes: per entry (and the manifest), its key ids and whether it gets a
// fresh data key. Never a value.
func DescribeChange(before, after *Sealed, w io.Writer) {
	type row struct {
		name string
		env  *envelope.Envelope
	}
	rows := func(s *Sealed) []row {
		if s.Single != nil {
			return []row{{s.Single.Name, s.Single}}
		}
		out := []row{{"(integrity manifest)", s.File.Integrity}}
		for _, e := range s.File.Entries {
			out = append(out, row{e.Name, e.Envelope})
		}
		return out
	}
	old := map[string]*envelope.Envelope{}
	for _, r := range rows(before) {
		old[r.name] = r.env
	}
	changed := 0
	for _, r := range rows(after) {
		o := old[r.name]
		if o == nil {
			fmt.Fprintf(w, "%s: new; keys %s\n", r.name, strings.Join(r.env.KeyIDs(), ", "))
			changed++
			continue
		}
		was, now := strings.Join(o.KeyIDs(), ", "), strings.Join(r.env.KeyIDs(), ", ")
		fresh := !bytes.Equal(o.Ciphertext, r.env.Ciphertext)
		switch {
		case was != now && fresh:
			fmt.Fprintf(w, "%s: new data key; keys %s -> %s\n", r.name, was, now)
		case was != now:
			fmt.Fprintf(w, "%s: keys %s -> %s\n", r.name, was, now)
		case fresh:
			fmt.Fprintf(w, "%s: new data key; keys %s\n", r.name, now)
		default:
			continue
		}
		changed++
	}
	fmt.Fprintf(w, "dry run: %d of %d would change; nothing was written\n", changed, len(rows(after)))
}

// Textconv writes what git diff compares for a secrets file (a textconv
// driver): one line per entry with its name, a fingerprint of its sealed
// value and its key ids. A changed value changes its fingerprint, so the
// diff names the entries that changed, never a value.
func Textconv(s *Sealed, w io.Writer) {
	line := func(name string, e *envelope.Envelope) {
		sum := sha256.Sum256(e.SealedBody())
		fmt.Fprintf(w, "%s: sealed %s, keys %s\n", name, hex.EncodeToString(sum[:6]), strings.Join(e.KeyIDs(), ", "))
	}
	if s.Single != nil {
		line(s.Single.Name, s.Single)
		return
	}
	fmt.Fprintf(w, "# secrets file: %d secret(s); a new fingerprint means the secret was sealed again\n", len(s.File.Entries))
	for _, e := range s.File.Entries {
		line(e.Name, e.Envelope)
	}
}

// KeysToMatch is what rewrap adds and removes so that s is wrapped for
// exactly want (a creation rule's keys).
func KeysToMatch(s *Sealed, want []envelope.KeyWrapper) (add []envelope.KeyWrapper, remove []string) {
	have := map[string]bool{}
	for _, id := range s.KeyIDs() {
		have[id] = true
	}
	keep := map[string]bool{}
	for _, w := range want {
		keep[w.KeyID()] = true
		if !have[w.KeyID()] {
			add = append(add, w)
		}
	}
	for _, id := range s.KeyIDs() {
		if !keep[id] {
			remove = append(remove, id)
		}
	}
	return add, remove
}
