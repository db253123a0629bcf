package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// Version is the only format version this package writes.
const Version = 1

// SuiteAES256GCM is suite 1: HKDF-SHA-256 key derivation, HKDF key
// commitment, AES-256-GCM payload.
const SuiteAES256GCM = 1

const (
	nonceSize      = 12
	commitmentSize = 32
	tagSize        = 16
)

// Stanza is one wrapped copy of an envelope's data key.
type Stanza struct {
	KeyID      string
	WrappedKey []byte
}

// Envelope is one sealed secret: a header in the clear (name, context, created
// time, key ids) and the ciphertext. Create one with [Seal]; read one with
// [Parse] or [ParseText].
type Envelope struct {
	Created    time.Time
	Name       string
	Context    map[string]string
	Nonce      [nonceSize]byte
	Commitment [commitmentSize]byte
	Stanzas    []Stanza
	Ciphertext []byte
}

// Binding returns the name and context the envelope is bound to.
func (e *Envelope) Binding() Binding { return Binding{Name: e.Name, Context: e.Context} }

// KeyIDs lists the ids of the keys that can open the envelope.
func (e *Envelope) KeyIDs() []string {
	ids := make([]string, len(e.Stanzas))
	for i, s := range e.Stanzas {
		ids[i] = s.KeyID
	}
	return ids
}

// Seal encrypts plaintext under a fresh 256-bit data key, bound to b, and
// wraps the data key with every wrapper given. Any one of them can open it.
func Seal(ctx context.Context, plaintext []byte, b Binding, wrappers ...KeyWrapper) (*Envelope, error) {
	if err := b.Validate(); err != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot seal: %w", err))
	}
	return seal(ctx, plaintext, b, wrappers)
}

func seal(ctx context.Context, plaintext []byte, b Binding, wrappers []KeyWrapper) (*Envelope, error) {
	if len(wrappers) == 0 {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot seal secret %q: no key given to wrap its data key", b.Name))
	}
	if len(wrappers) > MaxStanzas {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot seal secret %q: %d keys given; the limit is %d", b.Name, len(wrappers), MaxStanzas))
	}
	if len(plaintext) > MaxPlaintextLen {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot seal secret %q: it is %d bytes long; the limit is %d", b.Name, len(plaintext), MaxPlaintextLen))
	}
	if err := checkDistinctIDs(wrappers); err != nil {
		return nil, err
	}
	e := &Envelope{
		Created: time.Now().UTC().Truncate(time.Second),
		Name:    b.Name,
		Context: cloneContext(b.Context),
	}
	b = e.Binding()
	var dek []byte
	rest := wrappers
	if gen, ok := wrappers[0].(DataKeyGenerator); ok {
		key, wrapped, err := gen.GenerateDataKey(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("cannot seal secret %q: generating a data key with %s: %w", b.Name, wrappers[0].KeyID(), err)
		}
		if len(key) != DataKeySize {
			clear(key)
			return nil, fmt.Errorf("cannot seal secret %q: %s returned a %d-byte data key, want %d", b.Name, wrappers[0].KeyID(), len(key), DataKeySize)
		}
		dek = key
		e.Stanzas = append(e.Stanzas, Stanza{KeyID: wrappers[0].KeyID(), WrappedKey: wrapped})
		rest = wrappers[1:]
	} else {
		dek = make([]byte, DataKeySize)
		rand.Read(dek)
	}
	defer clear(dek)
	for _, w := range rest {
		wrapped, err := w.WrapKey(ctx, dek, b)
		if err != nil {
			return nil, fmt.Errorf("cannot seal secret %q: wrapping its data key with %s: %w", b.Name, w.KeyID(), err)
		}
		e.Stanzas = append(e.Stanzas, Stanza{KeyID: w.KeyID(), WrappedKey: wrapped})
	}
	if err := checkStanzas(e.Stanzas); err != nil {
		return nil, fmt.Errorf("cannot seal secret %q: %w", b.Name, err)
	}
	rand.Read(e.Nonce[:])
	payloadKey, commitment, err := deriveKeys(dek, e.Nonce[:])
	if err != nil {
		return nil, err
	}
	defer clear(payloadKey)
	copy(e.Commitment[:], commitment)
	aead, err := newGCM(payloadKey)
	if err != nil {
		return nil, err
	}
	e.Ciphertext = aead.Seal(nil, e.Nonce[:], plaintext, e.associatedData())
	return e, nil
}

func checkDistinctIDs(wrappers []KeyWrapper) error {
	seen := make(map[string]bool, len(wrappers))
	for _, w := range wrappers {
		id := w.KeyID()
		if seen[id] {
			return fail.Mark(fail.Usage, fmt.Errorf("key %s is given twice", id))
		}
		seen[id] = true
	}
	return nil
}

func checkStanzas(stanzas []Stanza) error {
	for _, s := range stanzas {
		if err := ValidKeyID(s.KeyID); err != nil {
			return err
		}
		if len(s.WrappedKey) == 0 || len(s.WrappedKey) > MaxWrappedKeyLen {
			return fmt.Errorf("wrapped data key for %s is %d bytes long; it must be 1 to %d", s.KeyID, len(s.WrappedKey), MaxWrappedKeyLen)
		}
	}
	return nil
}

// deriveKeys derives the payload key and the key commitment from the data key
// in one HKDF-SHA-256 call (docs/envelope.md, "Key schedule"). The result
// is 64 bytes: the payload key, then the commitment.
func deriveKeys(dek, nonce []byte) (payloadKey, commitment []byte, err error) {
	okm, err := hkdf.Key(sha256.New, dek, nonce, "secrets-broker/v1 payload key and commitment", 32+commitmentSize)
	if err != nil {
		return nil, nil, err
	}
	return okm[:32:32], okm[32:], nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Expect is what the reader requires of an envelope before opening it.
type Expect struct {
	// Name, when set, must equal the envelope's name. Readers that know which
	// secret they want (a secrets-file entry, a configured secret) always set
	// it, so a valid envelope of another secret put in its place is refused.
	Name string
	// Context pairs must all be present, with these values, in the
	// envelope's context.
	Context map[string]string
}

// ErrDecrypt is the one error opening returns for any authentication failure,
// so that failures are no oracle. Test for it with errors.Is.
var ErrDecrypt = errors.New("decryption failed")

// Open checks the envelope against want, unwraps its data key with the first
// configured key that matches one of its key ids, checks the key commitment
// and decrypts. keys are the wrappers the caller configured: the envelope
// never chooses what to connect to.
func (e *Envelope) Open(ctx context.Context, want Expect, keys []KeyWrapper) ([]byte, error) {
	if err := e.check(want); err != nil {
		return nil, err
	}
	dek, payloadKey, err := e.unwrap(ctx, keys)
	if err != nil {
		return nil, err
	}
	clear(dek)
	defer clear(payloadKey)
	return e.decrypt(payloadKey)
}

func (e *Envelope) check(want Expect) error {
	if want.Name != "" && want.Name != e.Name {
		return fail.Mark(fail.Integrity, fmt.Errorf("secret %q: %w: the envelope is sealed for secret %q", want.Name, ErrDecrypt, e.Name))
	}
	for _, k := range sortedKeys(want.Context) {
		if got, ok := e.Context[k]; !ok || got != want.Context[k] {
			return fail.Mark(fail.Integrity, fmt.Errorf("secret %q: %w: its context does not have %s=%s", e.Name, ErrDecrypt, k, want.Context[k]))
		}
	}
	return nil
}

// unwrap returns the data key and the payload key derived from it, after
// checking the data key against the commitment.
func (e *Envelope) unwrap(ctx context.Context, keys []KeyWrapper) (dek, payloadKey []byte, err error) {
	b := e.Binding()
	var errs []error
	tried := false
	for _, s := range e.Stanzas {
		w := findKey(keys, s.KeyID)
		if w == nil {
			continue
		}
		tried = true
		key, err := w.UnwrapKey(ctx, s.WrappedKey, b)
		dek = key
		if err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", s.KeyID, err))
			continue
		}
		if len(dek) != DataKeySize {
			clear(dek)
			errs = append(errs, fail.Mark(fail.Integrity, fmt.Errorf("key %q: %w", s.KeyID, ErrDecrypt)))
			continue
		}
		payloadKey, commitment, err := deriveKeys(dek, e.Nonce[:])
		if err != nil {
			clear(dek)
			return nil, nil, err
		}
		if subtle.ConstantTimeCompare(commitment, e.Commitment[:]) != 1 {
			clear(dek)
			clear(payloadKey)
			errs = append(errs, fail.Mark(fail.Integrity, fmt.Errorf("key %q: %w (key commitment mismatch)", s.KeyID, ErrDecrypt)))
			continue
		}
		return dek, payloadKey, nil
	}
	if !tried {
		configured := make([]string, 0, len(keys))
		for _, k := range keys {
			configured = append(configured, k.KeyID())
		}
		have := "none"
		if len(configured) > 0 {
			have = quoteAll(configured)
		}
		return nil, nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("secret %q: no configured key can open it: it is wrapped for %s; configured: %s",
			e.Name, quoteAll(e.KeyIDs()), have))
	}
	kind := fail.KeyUnavailable
	for _, err := range errs {
		if k := fail.KindOf(err); k == fail.Integrity {
			kind = k
		} else if kind != fail.Integrity && k != fail.Internal {
			kind = k
		}
	}
	return nil, nil, fail.Mark(kind, fmt.Errorf("secret %q: cannot unwrap its data key: %w", e.Name, errors.Join(errs...)))
}

func quoteAll(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = strconv.Quote(id)
	}
	return strings.Join(q, ", ")
}

func findKey(keys []KeyWrapper, id string) KeyWrapper {
	for _, k := range keys {
		if k.KeyID() == id {
			return k
		}
	}
	return nil
}

func (e *Envelope) decrypt(payloadKey []byte) ([]byte, error) {
	aead, err := newGCM(payloadKey)
	if err != nil {
		return nil, err
	}
	plaintext, err := aead.Open(nil, e.Nonce[:], e.Ciphertext, e.associatedData())
	if err != nil {
		return nil, fail.Mark(fail.Integrity, fmt.Errorf("secret %q: %w", e.Name, ErrDecrypt))
	}
	return plaintext, nil
}

// Rewrap changes which keys can open the envelope without touching its
// ciphertext: it unwraps the data key with one of keys, wraps it with each of
// add, and drops the stanzas whose key ids are in remove. At least one stanza
// must remain.
func (e *Envelope) Rewrap(ctx context.Context, keys []KeyWrapper, add []KeyWrapper, remove []string) (*Envelope, error) {
	drop := make(map[string]bool, len(remove))
	for _, id := range remove {
		drop[id] = true
	}
	out := *e
	out.Stanzas = nil
	for _, s := range e.Stanzas {
		if !drop[s.KeyID] {
			out.Stanzas = append(out.Stanzas, s)
		}
	}
	for _, id := range remove {
		if !containsID(e.Stanzas, id) {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("secret %q: cannot remove key %s: the envelope is not wrapped for it", e.Name, id))
		}
	}
	if len(add) > 0 {
		dek, payloadKey, err := e.unwrap(ctx, keys)
		if err != nil {
			return nil, err
		}
		clear(payloadKey)
		defer clear(dek)
		for _, w := range add {
			if containsID(out.Stanzas, w.KeyID()) {
				continue
			}
			wrapped, err := w.WrapKey(ctx, dek, e.Binding())
			if err != nil {
				return nil, fmt.Errorf("secret %q: wrapping its data key with %s: %w", e.Name, w.KeyID(), err)
			}
			out.Stanzas = append(out.Stanzas, Stanza{KeyID: w.KeyID(), WrappedKey: wrapped})
		}
	}
	if len(out.Stanzas) == 0 {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("secret %q: removing %s would leave no key that can open it", e.Name, strings.Join(remove, ", ")))
	}
	if len(out.Stanzas) > MaxStanzas {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("secret %q: %d keys; the limit is %d", e.Name, len(out.Stanzas), MaxStanzas))
	}
	if err := checkStanzas(out.Stanzas); err != nil {
		return nil, fmt.Errorf("secret %q: %w", e.Name, err)
	}
	return &out, nil
}

func containsID(stanzas []Stanza, id string) bool {
	for _, s := range stanzas {
		if s.KeyID == id {
			return true
		}
	}
	return false
}
