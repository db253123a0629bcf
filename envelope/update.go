package envelope

import (
	"context"
	"fmt"
	"maps"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// Change is one entry to set or remove in [File.Update].
type Change struct {
	Name string
	// Value is the new plaintext (ignored with Remove).
	Value []byte
	// Context is the entry's context when it is new; a changed entry
	// keeps its own.
	Context map[string]string
	Remove  bool
}

// Update verifies f with keys and returns the file with changes applied:
// every entry not named keeps its envelope byte for byte (a clean diff, its
// data key untouched), each set entry is sealed afresh with wrappers (in
// its place, or appended when new), each removed one is gone, and the
// manifest is sealed again with wrappers under f's file context. wrappers
// are the caller's configured keys, never ids read from f.
func (f *File) Update(ctx context.Context, keys []KeyWrapper, changes []Change, wrappers ...KeyWrapper) (*File, error) {
	if err := f.Verify(ctx, FileExpect{}, keys); err != nil {
		return nil, err
	}
	for i := range f.Entries {
		if err := f.checkEntry(i); err != nil {
			return nil, err
		}
	}
	byName := map[string]int{}
	for i, c := range changes {
		if _, dup := byName[c.Name]; dup {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("secret %q is changed twice in one update", c.Name))
		}
		byName[c.Name] = i
		if c.Remove {
			if _, err := f.entry(c.Name); err != nil {
				return nil, err
			}
		}
	}
	out := &File{Path: f.Path}
	done := map[string]bool{}
	for _, e := range f.Entries {
		i, changed := byName[e.Name]
		if !changed {
			out.Entries = append(out.Entries, Entry{Name: e.Name, Envelope: e.Envelope})
			continue
		}
		done[e.Name] = true
		c := changes[i]
		if c.Remove {
			continue
		}
		ne, err := Seal(ctx, c.Value, Binding{Name: e.Name, Context: maps.Clone(e.Envelope.Context)}, wrappers...)
		if err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, Entry{Name: e.Name, Envelope: ne})
	}
	for _, c := range changes {
		if done[c.Name] || c.Remove {
			continue
		}
		ne, err := Seal(ctx, c.Value, Binding{Name: c.Name, Context: MergeContext(f.Context(), c.Context)}, wrappers...)
		if err != nil {
			return nil, err
		}
		out.Entries = append(out.Entries, Entry{Name: c.Name, Envelope: ne})
	}
	if len(out.Entries) > MaxEntries {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("%d entries; a secrets file holds at most %d", len(out.Entries), MaxEntries))
	}
	if err := out.sealManifest(ctx, maps.Clone(f.Context()), wrappers); err != nil {
		return nil, err
	}
	out.recordVerified()
	return out, nil
}
