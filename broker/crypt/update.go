package crypt

import (
	"context"
	"fmt"
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
