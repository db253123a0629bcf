// Package crypt owns the encryption CLI's work on whole secrets files:
// plaintext input parsed, sealed files read, inspected, rotated, rewrapped
// and written out. Sealing and opening one secret is envelope's job.
package crypt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/format"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// MaxInputLen bounds what the CLI reads from stdin or a file.
const MaxInputLen = envelope.MaxFileLen

// Sealed is what the CLI reads back: one envelope in text form, or a secrets
// file.
type Sealed struct {
	Single *envelope.Envelope
	File   *envelope.File
}

// ParseSealed tells a single envelope ("sbe1:...") from a secrets file.
func ParseSealed(data []byte, path string) (*Sealed, error) {
	trimmed := bytes.TrimSpace(data)
	if bytes.HasPrefix(trimmed, []byte("sbe")) && !bytes.ContainsAny(trimmed, "\n") {
		e, err := envelope.ParseText(string(trimmed))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &Sealed{Single: e}, nil
	}
	f, err := envelope.ParseFile(data, path)
	if err != nil {
		return nil, err
	}
	return &Sealed{File: f}, nil
}

// Format names how a secrets file is written.
type Format string

// The formats.
const (
	FormatYAML Format = "yaml"
	FormatJSON Format = "json"
)

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatYAML, FormatJSON:
		return Format(s), nil
	}
	return "", fail.Mark(fail.Usage, fmt.Errorf("format %q is not yaml or json", s))
}

// MarshalFile writes a secrets file in the format. A file larger than
// envelope.MaxFileLen is refused: no reader would accept it.
func MarshalFile(f *envelope.File, format Format) ([]byte, error) {
	var out []byte
	if format == FormatJSON {
		out, _ = f.MarshalJSON()
	} else {
		out = f.MarshalYAML()
	}
	if len(out) > envelope.MaxFileLen {
		return nil, fail.Mark(fail.Format, fmt.Errorf("the sealed secrets file would be %d bytes; secrets-broker reads secrets files of at most %d bytes: split the secrets into several files", len(out), envelope.MaxFileLen))
	}
	return out, nil
}

// MarshalPlain writes decrypted values as a YAML or JSON mapping, in order.
func MarshalPlain(values []envelope.Plain, f Format) ([]byte, error) {
	return format.Marshal(values, string(f))
}

// EntrySummary describes one sealed secret without its value.
type EntrySummary struct {
	Name    string            `json:"name"`
	Created time.Time         `json:"created"`
	KeyIDs  []string          `json:"key_ids"`
	Context map[string]string `json:"context,omitempty"`
	Size    int               `json:"ciphertext_bytes"`
}

// Summary is what inspect shows: names, key ids, created times, never values.
type Summary struct {
	Kind              string         `json:"kind"`
	FormatVersion     int            `json:"format_version"`
	Entries           []EntrySummary `json:"entries"`
	IntegrityKeyIDs   []string       `json:"integrity_key_ids,omitempty"`
	IntegrityVerified *bool          `json:"integrity_verified,omitempty"`
}

func summarize(e *envelope.Envelope) EntrySummary {
	return EntrySummary{Name: e.Name, Created: e.Created, KeyIDs: e.KeyIDs(), Context: e.Context, Size: len(e.Ciphertext)}
}

// Inspect summarizes s. With keys, a secrets file's integrity manifest is
// also checked.
func (s *Sealed) Inspect(ctx context.Context, keys []envelope.KeyWrapper) (Summary, error) {
	if s.Single != nil {
		return Summary{Kind: "envelope", FormatVersion: envelope.Version, Entries: []EntrySummary{summarize(s.Single)}}, nil
	}
	sum := Summary{Kind: "secrets-file", FormatVersion: envelope.Version, IntegrityKeyIDs: s.File.Integrity.KeyIDs()}
	for _, e := range s.File.Entries {
		sum.Entries = append(sum.Entries, summarize(e.Envelope))
	}
	if len(keys) > 0 {
		if err := s.File.Verify(ctx, envelope.FileExpect{}, keys); err != nil {
			return sum, err
		}
		ok := true
		sum.IntegrityVerified = &ok
	}
	return sum, nil
}

// FormatSummary renders a summary as aligned text.
func FormatSummary(sum Summary, w io.Writer) {
	fmt.Fprintf(w, "%s, format v%d, %d secret(s)\n", sum.Kind, sum.FormatVersion, len(sum.Entries))
	if sum.Kind == "secrets-file" {
		state := "not checked (no key configured)"
		if sum.IntegrityVerified != nil {
			state = "verified"
		}
		fmt.Fprintf(w, "integrity manifest: %s; keys %s\n", state, strings.Join(sum.IntegrityKeyIDs, ", "))
	}
	for _, e := range sum.Entries {
		fmt.Fprintf(w, "\n%s\n  created: %s\n  keys:    %s\n  size:    %d bytes sealed\n", e.Name, e.Created.Format(time.RFC3339), strings.Join(e.KeyIDs, ", "), e.Size)
		if len(e.Context) > 0 {
			keys := make([]string, 0, len(e.Context))
			for k := range e.Context {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			pairs := make([]string, len(keys))
			for i, k := range keys {
				pairs[i] = k + "=" + e.Context[k]
			}
			fmt.Fprintf(w, "  context: %s\n", strings.Join(pairs, ", "))
		}
	}
}

// KeyIDs lists the key ids s is wrapped for, as its stanzas claim them.
// Stanzas are not authenticated: show these to a user, never seal to them.
func (s *Sealed) KeyIDs() []string {
	if s.Single != nil {
		return s.Single.KeyIDs()
	}
	seen := map[string]bool{}
	var ids []string
	for _, e := range append([]*envelope.Envelope{s.File.Integrity}, entryEnvelopes(s.File)...) {
		for _, id := range e.KeyIDs() {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids
}

func entryEnvelopes(f *envelope.File) []*envelope.Envelope {
	out := make([]*envelope.Envelope, len(f.Entries))
	for i, e := range f.Entries {
		out[i] = e.Envelope
	}
	return out
}

// Rotate reseals every value of s under new data keys with the wrappers
// given (the caller's configured keys, never ids read from s), keeping
// names and contexts.
func (s *Sealed) Rotate(ctx context.Context, open, seal []envelope.KeyWrapper) (*Sealed, error) {
	if s.Single != nil {
		pt, err := s.Single.Open(ctx, envelope.Expect{Name: s.Single.Name}, open)
		if err != nil {
			return nil, err
		}
		defer clear(pt)
		e, err := envelope.Seal(ctx, pt, s.Single.Binding(), seal...)
		if err != nil {
			return nil, err
		}
		return &Sealed{Single: e}, nil
	}
	values, err := s.File.OpenAll(ctx, envelope.FileExpect{}, open, 8)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, v := range values {
			clear(v.Value)
		}
	}()
	// Keep each entry's own context: seal one by one, then the manifest.
	var ctxs []map[string]string
	for _, e := range s.File.Entries {
		ctxs = append(ctxs, e.Envelope.Context)
	}
	f, err := envelope.SealFileEach(ctx, values, ctxs, s.File.Context(), seal...)
	if err != nil {
		return nil, err
	}
	f.Path = s.File.Path
	return &Sealed{File: f}, nil
}

// Rewrap adds and removes keys without touching ciphertext.
func (s *Sealed) Rewrap(ctx context.Context, open, add []envelope.KeyWrapper, remove []string) (*Sealed, error) {
	if s.Single != nil {
		e, err := s.Single.Rewrap(ctx, open, add, remove)
		if err != nil {
			return nil, err
		}
		return &Sealed{Single: e}, nil
	}
	f, err := s.File.Rewrap(ctx, open, add, remove)
	if err != nil {
		return nil, err
	}
	return &Sealed{File: f}, nil
}

// Marshal writes s back in its own form.
func (s *Sealed) Marshal(format Format) ([]byte, error) {
	if s.Single != nil {
		return []byte(s.Single.String() + "\n"), nil
	}
	return MarshalFile(s.File, format)
}
