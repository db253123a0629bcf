package envelope

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// MaxFileLen bounds a secrets file read from disk. A file of MaxEntries
// ordinary entries is a few MiB; one 4 MiB secret takes about 5.6 MiB.
const MaxFileLen = 16 << 20

// MaxFileNodes bounds the YAML tree of a secrets file, counted before it is
// built (readlimit.YAMLNodes): a file of MaxEntries entries counts 6 per
// entry in YAML and 9 in JSON.
const MaxFileNodes = 12*MaxEntries + 1024

// MaxEntries bounds the number of entries in a secrets file.
const MaxEntries = 10000

// Entry is one named secret of a secrets file.
type Entry struct {
	Name     string
	Envelope *Envelope
	line     int
}

// Plain is a name and its plaintext value, the input of [SealFile] and the
// output of [File.OpenAll].
type Plain struct {
	Name  string
	Value []byte
}

// File is a secrets file: named entries, each sealed under its own data key,
// in order, and an integrity manifest sealed under yet another data key that
// lists every entry's name and the hash of its sealed body. Removing, adding,
// reordering, renaming or replacing entries (even by an older valid version)
// is detected.
type File struct {
	Entries   []Entry
	Integrity *Envelope
	// Path is the file name used in error messages; it is not authenticated.
	Path string

	// verified holds each entry's name and the hash of its sealed body as
	// the manifest vouched for them; Open checks the entry against it, so
	// entries changed after verification are refused.
	verified []verifiedEntry
}

type verifiedEntry struct {
	name string
	sum  [32]byte
}

// FileExpect is what a reader requires of a secrets file.
type FileExpect struct {
	// Context pairs must be in the integrity manifest's context (the
	// file-level context it was sealed with) and in every entry opened.
	Context map[string]string
}

// SealFile seals each value under its own data key, bound to its name and
// to context, and seals the manifest with context as the file-level context.
func SealFile(ctx context.Context, values []Plain, context map[string]string, wrappers ...KeyWrapper) (*File, error) {
	ctxs := make([]map[string]string, len(values))
	for i := range ctxs {
		ctxs[i] = context
	}
	return SealFileEach(ctx, values, ctxs, context, wrappers...)
}

// SealFileEach is SealFile with a context for each value, and fileContext for
// the manifest.
func SealFileEach(ctx context.Context, values []Plain, contexts []map[string]string, fileContext map[string]string, wrappers ...KeyWrapper) (*File, error) {
	if err := validContext(fileContext, true); err != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot seal the secrets file: %w", err))
	}
	if len(contexts) != len(values) {
		return nil, fmt.Errorf("%d values but %d contexts", len(values), len(contexts))
	}
	if len(values) > MaxEntries {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("%d entries; a secrets file holds at most %d", len(values), MaxEntries))
	}
	f := &File{}
	seen := make(map[string]bool, len(values))
	for i, v := range values {
		if seen[v.Name] {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("secret %q appears twice", v.Name))
		}
		seen[v.Name] = true
		e, err := Seal(ctx, v.Value, Binding{Name: v.Name, Context: contexts[i]}, wrappers...)
		if err != nil {
			return nil, err
		}
		f.Entries = append(f.Entries, Entry{Name: v.Name, Envelope: e})
	}
	if err := f.sealManifest(ctx, fileContext, wrappers); err != nil {
		return nil, err
	}
	f.recordVerified()
	return f, nil
}

func (f *File) recordVerified() {
	f.verified = make([]verifiedEntry, len(f.Entries))
	for i, e := range f.Entries {
		f.verified[i] = verifiedEntry{name: e.Name, sum: sha256.Sum256(e.Envelope.SealedBody())}
	}
}

// checkEntry refuses entry i unless it is the entry the manifest vouched
// for when the file was verified.
func (f *File) checkEntry(i int) error {
	if i >= len(f.verified) || len(f.Entries) != len(f.verified) {
		return fail.Mark(fail.Integrity, fmt.Errorf("%s: entries changed after the integrity check", f.where()))
	}
	e, v := f.Entries[i], f.verified[i]
	if sum := sha256.Sum256(e.Envelope.SealedBody()); e.Name != v.name || subtle.ConstantTimeCompare(sum[:], v.sum[:]) != 1 {
		return fail.Mark(fail.Integrity, fmt.Errorf("%s: secret %q changed after the integrity check", f.where(), e.Name))
	}
	return nil
}

func (f *File) manifest() []byte {
	var buf bytes.Buffer
	buf.WriteString("secrets-broker/manifest/v1\x00")
	for _, e := range f.Entries {
		buf.WriteByte(byte(len(e.Name)))
		buf.WriteString(e.Name)
		sum := sha256.Sum256(e.Envelope.SealedBody())
		buf.Write(sum[:])
	}
	return buf.Bytes()
}

func (f *File) sealManifest(ctx context.Context, fileContext map[string]string, wrappers []KeyWrapper) error {
	m, err := seal(ctx, f.manifest(), Binding{Name: ManifestName, Context: fileContext}, wrappers)
	if err != nil {
		return err
	}
	f.Integrity = m
	return nil
}

func (f *File) where() string {
	if f.Path == "" {
		return "secrets file"
	}
	return "secrets file " + f.Path
}

// Context is the file-level context the manifest was sealed with
// (authenticated once the file has been verified).
func (f *File) Context() map[string]string {
	if f.Integrity == nil {
		return nil
	}
	return f.Integrity.Context
}

// Verify opens the manifest, checks it against the entries and checks that
// its context has want's pairs. The manifest is opened once per parsed file;
// the context is checked every time. Open and OpenAll call it.
func (f *File) Verify(ctx context.Context, want FileExpect, keys []KeyWrapper) error {
	if f.Integrity == nil {
		return fail.Mark(fail.Integrity, fmt.Errorf("%s has no integrity manifest", f.where()))
	}
	if f.verified == nil {
		got, err := f.Integrity.Open(ctx, Expect{Name: ManifestName}, keys)
		if err != nil {
			return fmt.Errorf("%s: integrity check: %w", f.where(), err)
		}
		match := subtle.ConstantTimeCompare(got, f.manifest()) == 1
		clear(got)
		if !match {
			return fail.Mark(fail.Integrity, fmt.Errorf("%s: integrity check failed: entries were added, removed, reordered, renamed or replaced since it was sealed", f.where()))
		}
		f.recordVerified()
	}
	if err := f.Integrity.check(Expect{Name: ManifestName, Context: want.Context}); err != nil {
		return fmt.Errorf("%s: the file is not sealed with the required context: %w", f.where(), err)
	}
	return nil
}

func (f *File) entry(name string) (int, error) {
	for i := range f.Entries {
		if f.Entries[i].Name == name {
			return i, nil
		}
	}
	names := make([]string, len(f.Entries))
	for i, e := range f.Entries {
		names[i] = e.Name
	}
	return -1, fail.Mark(fail.NotFound, fmt.Errorf("%s has no secret %q (it has: %s)", f.where(), name, strings.Join(names, ", ")))
}

// entryExpect is what an entry must satisfy: its own name, the file-level
// context and the extra pairs the reader requires of this secret.
func entryExpect(name string, file FileExpect, extra map[string]string) Expect {
	return Expect{Name: name, Context: MergeContext(file.Context, extra)}
}

// MergeContext returns the pairs of a and b (b's value wins for a key in
// both), or nil when both are empty.
func MergeContext(a, b map[string]string) map[string]string {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Open verifies the file and decrypts the entry want.Name, which must have
// file's and want's context pairs.
func (f *File) Open(ctx context.Context, want Expect, file FileExpect, keys []KeyWrapper) ([]byte, error) {
	i, err := f.entry(want.Name)
	if err != nil {
		return nil, err
	}
	if err := f.Verify(ctx, file, keys); err != nil {
		return nil, err
	}
	if err := f.checkEntry(i); err != nil {
		return nil, err
	}
	pt, err := f.Entries[i].Envelope.Open(ctx, entryExpect(want.Name, file, want.Context), keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.where(), err)
	}
	return pt, nil
}

// OpenAll verifies the file and decrypts every entry, at most concurrency at
// a time (key services answer in parallel). Every entry must have want's
// context pairs.
func (f *File) OpenAll(ctx context.Context, want FileExpect, keys []KeyWrapper, concurrency int) ([]Plain, error) {
	if err := f.Verify(ctx, want, keys); err != nil {
		return nil, err
	}
	for i := range f.Entries {
		if err := f.checkEntry(i); err != nil {
			return nil, err
		}
	}
	out := make([]Plain, len(f.Entries))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for i := range f.Entries {
		e := f.Entries[i]
		g.Go(func() error {
			pt, err := e.Envelope.Open(gctx, entryExpect(e.Name, want, nil), keys)
			if err != nil {
				return fmt.Errorf("%s: %w", f.where(), err)
			}
			out[i] = Plain{Name: e.Name, Value: pt}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		for _, p := range out {
			clear(p.Value)
		}
		return nil, err
	}
	return out, nil
}

// Rewrap changes the keys of every entry and of the manifest, without
// touching any ciphertext. The file must verify first.
func (f *File) Rewrap(ctx context.Context, keys []KeyWrapper, add []KeyWrapper, remove []string) (*File, error) {
	if err := f.Verify(ctx, FileExpect{}, keys); err != nil {
		return nil, err
	}
	out := &File{Path: f.Path, Entries: make([]Entry, len(f.Entries))}
	for i, e := range f.Entries {
		if err := f.checkEntry(i); err != nil {
			return nil, err
		}
		ne, err := e.Envelope.Rewrap(ctx, keys, add, remove)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.where(), err)
		}
		out.Entries[i] = Entry{Name: e.Name, Envelope: ne}
	}
	m, err := f.Integrity.Rewrap(ctx, keys, add, remove)
	if err != nil {
		return nil, fmt.Errorf("%s: manifest: %w", f.where(), err)
	}
	out.Integrity = m
	out.recordVerified()
	return out, nil
}
