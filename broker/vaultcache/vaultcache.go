// Package vaultcache owns the restart cache: what the broker fetched from
// Vault (responses with their leases, and the broker's own token), sealed on
// disk in secrets-broker envelopes so that a restarted broker can reuse a
// lease or a certificate instead of minting a new one.
//
// Each entry is one file holding one envelope sealed under a fresh data key
// and bound, by its name and context, to the Vault it came from and the
// request it answers (path and parameters; for a computed path, inside the
// sealed entry instead: see Request). The reader always checks both:
// an entry copied over another, edited, truncated or sealed by another key
// is refused, and the caller fetches afresh. The cache decides nothing
// about validity: callers check leases with Vault and expiry times.
package vaultcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/atomicfile"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// MaxEntryLen bounds one cache file, read before anything is parsed.
const MaxEntryLen = 1 << 20

// entryName is the envelope name of every cache entry; what it answers is
// in its context.
const entryName = "secrets-broker.cache"

// Entry is one cached Vault response.
type Entry struct {
	// Response is Vault's whole response (for the broker's token, Auth
	// holds it).
	Response *api.Secret `json:"response"`
	// Fetched is when the response arrived (wall clock).
	Fetched time.Time `json:"fetched"`
	// Expires is when its lease (or token) ends, as last extended; zero
	// when it has none.
	Expires time.Time `json:"expires,omitzero"`
	// Request is the key of a Computed request, sealed with the entry and
	// checked by Get (the context says only "computed"); Put sets it.
	Request string `json:"request,omitempty"`
	// Login names whom the Vault login that fetched the entry made the
	// broker (vault.Auth's Principal: a hash of the token, the role_id, or
	// a JWT's issuer and subject), sealed with the entry and checked by
	// Get, so that credentials changed in place (a new role_id in the same
	// file) never get back what the old ones fetched; Put sets it.
	Login string `json:"login,omitempty"`
}

// Request names what an entry answers: a Vault request key (path and
// parameters). Computed marks a path a template computed while rendering:
// it may be built from a secret's value, so it is never written where
// others read it. The entry's context, which is not encrypted (and which a
// KMS key sends to AWS, where CloudTrail logs it), says only "computed";
// the key is sealed inside the entry and Get checks it there. Errors name
// such an entry "a computed path".
type Request struct {
	Key      string
	Computed bool
}

func (r Request) shown() string {
	if r.Computed {
		return "a computed path"
	}
	return r.Key
}

// Store is a cache directory and the key its entries are sealed with.
type Store struct {
	// root is the cache directory, held open: every entry is read and
	// written through it, so the directory checked at Open is the one
	// used, whatever is later renamed or linked in its place.
	root *os.Root
	keys []envelope.KeyWrapper
	// vault names the Vault every entry is bound to (address and
	// namespace): entries from another Vault are refused.
	vault string
	// login is sealed inside every entry and checked on read (Entry.Login).
	login string
}

// Open opens the cache directory dir, or makes it (0700). keys[0] seals new
// entries; any of keys opens them. vault names the Vault (address and
// namespace, and the login settings) the entries are bound to in their
// context; login names whom the login makes the broker (secret: it is
// sealed inside each entry, never written in the clear).
//
// The directory must be the broker's alone (see private): a directory
// someone else can list, rename or delete entries in is tightened to 0700
// when the broker owns it, and otherwise (a mount point owned by root,
// such as an emptyDir) the entries go into a subdirectory of the broker's
// own. A symbolic link is refused.
func Open(dir string, keys []envelope.KeyWrapper, vault, login string) (*Store, error) {
	if len(keys) == 0 {
		return nil, fail.Mark(fail.Usage, errors.New("cache: no key to seal entries with; set cache.key"))
	}
	root, err := private(dir)
	if err != nil {
		return nil, err
	}
	return &Store{root: root, keys: keys, vault: vault, login: login}, nil
}

// Principal is the login principal this store seals into its entries and
// requires of them (Open's login).
func (s *Store) Principal() string { return s.login }

// Close releases the cache directory.
func (s *Store) Close() error { return s.root.Close() }

// Dir is the cache directory (its path when it was opened).
func (s *Store) Dir() string { return s.root.Name() }

// binding names what an entry answers. Long request keys are hashed so the
// context stays within the envelope's bounds; a computed one is not there
// at all (Request).
func (s *Store) binding(r Request) envelope.Binding {
	key := r.Key
	if r.Computed {
		key = "computed"
	} else if len(key) > envelope.MaxContextValueLen-8 {
		sum := sha256.Sum256([]byte(key))
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	return envelope.Binding{Name: entryName, Context: map[string]string{"vault": s.vault, "request": key}}
}

// file is the name of r's entry in the cache directory: a hash, so that no
// request text (which may be long, hold parameters or be computed) becomes
// a file name.
func (s *Store) file(r Request) string {
	sum := sha256.Sum256([]byte(s.vault + "\x00" + r.Key))
	return hex.EncodeToString(sum[:16]) + ".sbe"
}

// Put seals e for key under a fresh data key and replaces its file
// atomically.
func (s *Store) Put(ctx context.Context, r Request, e Entry) error {
	e.Request, e.Login = "", s.login
	if r.Computed {
		e.Request = r.Key
	}
	plain, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("cache: cannot encode the entry for %s: %w", r.shown(), err)
	}
	defer clear(plain)
	env, err := envelope.Seal(ctx, plain, s.binding(r), s.keys[0])
	if err != nil {
		return fmt.Errorf("cache: cannot seal the entry for %s: %w", r.shown(), err)
	}
	text, err := env.MarshalText()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteIn(s.root, s.file(r), text, 0o600); err != nil {
		return fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	return nil
}

// ErrRefused marks an entry that is present but cannot be trusted: it does
// not parse, is bound to another request or Vault, or fails to decrypt.
var ErrRefused = errors.New("cache entry refused")

// Get returns key's entry. ok is false when there is none. An entry that
// cannot be trusted is an error wrapping ErrRefused that says why (never its
// content); the caller should Delete it and fetch afresh.
func (s *Store) Get(ctx context.Context, r Request) (e Entry, ok bool, err error) {
	name := s.file(r)
	path := filepath.Join(s.Dir(), name)
	refused := func(why error) (Entry, bool, error) {
		return Entry{}, false, fmt.Errorf("%w: %s (for %s): %w", ErrRefused, path, r.shown(), why)
	}
	f, err := s.root.OpenFile(name, os.O_RDONLY|nonBlocking, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, false, nil
	}
	if err != nil {
		return refused(err)
	}
	data, err := readlimit.Opened(f, MaxEntryLen, "cache entry")
	f.Close()
	if err != nil {
		return refused(err)
	}
	env, err := envelope.ParseText(strings.TrimSpace(string(data)))
	if err != nil {
		return refused(err)
	}
	plain, err := env.Open(ctx, envelope.Expect(s.binding(r)), s.keys)
	if err != nil {
		return refused(err)
	}
	defer clear(plain)
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.UseNumber() // as Vault's client decodes responses
	if err := dec.Decode(&e); err != nil || e.Response == nil {
		return refused(errors.New("the sealed content is not a cache entry"))
	}
	if r.Computed && e.Request != r.Key {
		return refused(errors.New("it answers another computed path"))
	}
	if e.Login != s.login {
		return refused(errors.New("it was kept for another Vault login (the credentials now name someone else, or it predates this binding)"))
	}
	return e, true, nil
}

// Delete removes r's entry, if any.
func (s *Store) Delete(r Request) error {
	err := s.root.Remove(s.file(r))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	return nil
}
