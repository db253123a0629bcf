package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// Magic starts every binary envelope: "sbe" and the version byte.
var magic = [4]byte{'s', 'b', 'e', Version}

// TextPrefix starts the compact text form of an envelope.
const TextPrefix = "sbe1:"

// ErrFormat marks input that is not a well-formed v1 envelope.
var ErrFormat = errors.New("malformed envelope")

// sealedHeader is the part of the header that the payload authenticates:
// everything but the stanzas (docs/envelope.md, "Associated data").
func (e *Envelope) sealedHeader() []byte {
	out := make([]byte, 0, 64+len(e.Name))
	out = append(out, magic[:]...)
	out = append(out, SuiteAES256GCM)
	out = binary.BigEndian.AppendUint64(out, uint64(e.Created.Unix()))
	out = append(out, byte(len(e.Name)))
	out = append(out, e.Name...)
	out = appendContext(out, e.Context)
	out = append(out, e.Nonce[:]...)
	out = append(out, e.Commitment[:]...)
	return out
}

func (e *Envelope) associatedData() []byte {
	return append([]byte("secrets-broker/envelope/v1 aad\x00"), e.sealedHeader()...)
}

// SealedBody is the sealed header and the ciphertext: the part of an envelope
// that rewrapping never changes. A secrets file's manifest hashes it.
func (e *Envelope) SealedBody() []byte {
	out := e.sealedHeader()
	out = binary.BigEndian.AppendUint32(out, uint32(len(e.Ciphertext)))
	return append(out, e.Ciphertext...)
}

// Marshal returns the binary form of the envelope.
func (e *Envelope) Marshal() []byte {
	out := e.sealedHeader()
	out = append(out, byte(len(e.Stanzas)))
	for _, s := range e.Stanzas {
		out = binary.BigEndian.AppendUint16(out, uint16(len(s.KeyID)))
		out = append(out, s.KeyID...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(s.WrappedKey)))
		out = append(out, s.WrappedKey...)
	}
	out = binary.BigEndian.AppendUint32(out, uint32(len(e.Ciphertext)))
	return append(out, e.Ciphertext...)
}

// MarshalText returns the compact text form: "sbe1:" and the unpadded
// URL-safe base64 of the binary form. It fits an environment variable or a
// YAML scalar.
func (e *Envelope) MarshalText() ([]byte, error) {
	bin := e.Marshal()
	out := make([]byte, len(TextPrefix)+base64.RawURLEncoding.EncodedLen(len(bin)))
	copy(out, TextPrefix)
	base64.RawURLEncoding.Encode(out[len(TextPrefix):], bin)
	return out, nil
}

// String is the compact text form.
func (e *Envelope) String() string {
	b, _ := e.MarshalText()
	return string(b)
}

// maxBinaryLen bounds a whole binary envelope.
const maxBinaryLen = 4 + 1 + 8 + 1 + MaxNameLen + 1 + MaxContextPairs*(1+MaxContextKeyLen+2+MaxContextValueLen) +
	nonceSize + commitmentSize + 1 + MaxStanzas*(4+MaxKeyIDLen+MaxWrappedKeyLen) + 4 + MaxPlaintextLen + tagSize

// MaxTextLen bounds the compact text form.
var MaxTextLen = len(TextPrefix) + base64.RawURLEncoding.EncodedLen(maxBinaryLen)

// ParseText reads the compact text form. Surrounding white space is ignored.
func ParseText(text string) (*Envelope, error) {
	return parseText([]byte(text))
}

// parseText is ParseText on bytes the caller will not change (a slice of a
// file being parsed): the decoded form is new memory the envelope owns.
func parseText(text []byte) (*Envelope, error) {
	text = bytes.TrimSpace(text)
	if len(text) > MaxTextLen {
		return nil, formatErr("text form is %d bytes long; the limit is %d", len(text), MaxTextLen)
	}
	if !bytes.HasPrefix(text, []byte(TextPrefix)) {
		if bytes.HasPrefix(text, []byte("sbe")) && len(text) > 4 && text[4] == ':' {
			return nil, formatErr("version %q is not supported by this build (it reads %q)", text[:4], TextPrefix)
		}
		return nil, formatErr("text form must start with %q", TextPrefix)
	}
	body := text[len(TextPrefix):]
	for i, c := range body {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			// base64 decoders skip CR and LF; the text form has none.
			return nil, formatErr("byte %d of the text form is %q, which is not unpadded base64url", len(TextPrefix)+i, c)
		}
	}
	bin := make([]byte, base64.RawURLEncoding.DecodedLen(len(body)))
	n, err := base64.RawURLEncoding.Strict().Decode(bin, body)
	if err != nil {
		return nil, formatErr("bad base64 after %q: %v", TextPrefix, err)
	}
	// bin is ours: the envelope may keep slices of it (no second copy of
	// a large payload).
	return parse(bin[:n], true)
}

func formatErr(format string, args ...any) error {
	return fail.Mark(fail.Format, fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...)))
}

type reader struct {
	buf []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.buf)-r.off < n {
		r.err = formatErr("truncated at byte %d reading %s", r.off, what)
		return nil
	}
	b := r.buf[r.off : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8(what string) int {
	b := r.take(1, what)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (r *reader) u16(what string) int {
	b := r.take(2, what)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(b))
}

func (r *reader) u32(what string) int {
	b := r.take(4, what)
	if b == nil {
		return 0
	}
	return int(binary.BigEndian.Uint32(b))
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = formatErr(format, args...)
	}
}

// Parse reads the binary form. Every length is checked against the format's
// limits before it is used; nothing may follow the payload.
func Parse(data []byte) (*Envelope, error) {
	return parse(data, false)
}

// parse is Parse; with own, the envelope keeps slices of data instead of
// copies.
func parse(data []byte, own bool) (*Envelope, error) {
	if len(data) > maxBinaryLen {
		return nil, formatErr("envelope is %d bytes long; the limit is %d", len(data), maxBinaryLen)
	}
	r := &reader{buf: data}
	m := r.take(4, "magic")
	if r.err != nil {
		return nil, r.err
	}
	if string(m[:3]) != "sbe" {
		return nil, formatErr("not a secrets-broker envelope (bad magic)")
	}
	if m[3] != Version {
		return nil, formatErr("envelope version %d is not supported by this build (it reads version %d)", m[3], Version)
	}
	if suite := r.u8("suite"); r.err == nil && suite != SuiteAES256GCM {
		return nil, formatErr("cipher suite %d is not supported", suite)
	}
	e := &Envelope{}
	if b := r.take(8, "created time"); b != nil {
		secs := binary.BigEndian.Uint64(b)
		if secs >= MaxCreated {
			r.fail("created time %d is out of range (it must be below 2^40)", secs)
		}
		e.Created = time.Unix(int64(secs), 0).UTC()
	}
	nameLen := r.u8("name length")
	e.Name = string(r.take(nameLen, "name"))
	if r.err == nil {
		if err := validName(e.Name); err != nil {
			r.fail("%v", err)
		} else if strings.HasPrefix(e.Name, ReservedPrefix) && e.Name != ManifestName {
			r.fail("secret name %q uses the reserved prefix %q", e.Name, ReservedPrefix)
		}
	}
	pairs := r.u8("context count")
	if r.err == nil && pairs > MaxContextPairs {
		r.fail("context has %d pairs; the limit is %d", pairs, MaxContextPairs)
	}
	prev := ""
	for i := 0; i < pairs && r.err == nil; i++ {
		k := string(r.take(r.u8("context key length"), "context key"))
		vlen := r.u16("context value length")
		if r.err == nil && vlen > MaxContextValueLen {
			r.fail("context value for %q is %d bytes long; the limit is %d", k, vlen, MaxContextValueLen)
		}
		v := string(r.take(vlen, "context value"))
		if r.err != nil {
			break
		}
		if k == "" || (i > 0 && k <= prev) {
			r.fail("context keys are not sorted and unique at %q", k)
			break
		}
		if err := validContextPair(k, v); err != nil {
			r.fail("%v", err)
			break
		}
		if e.Context == nil {
			e.Context = make(map[string]string, pairs)
		}
		e.Context[k] = v
		prev = k
	}
	copy(e.Nonce[:], r.take(nonceSize, "nonce"))
	copy(e.Commitment[:], r.take(commitmentSize, "key commitment"))
	n := r.u8("stanza count")
	if r.err == nil && (n == 0 || n > MaxStanzas) {
		r.fail("%d wrapped keys; there must be 1 to %d", n, MaxStanzas)
	}
	for i := 0; i < n && r.err == nil; i++ {
		idLen := r.u16("key id length")
		if r.err == nil && (idLen == 0 || idLen > MaxKeyIDLen) {
			r.fail("key id %d is %d bytes long; it must be 1 to %d", i+1, idLen, MaxKeyIDLen)
		}
		id := string(r.take(idLen, "key id"))
		wLen := r.u16("wrapped key length")
		if r.err == nil && (wLen == 0 || wLen > MaxWrappedKeyLen) {
			r.fail("wrapped key for %q is %d bytes long; it must be 1 to %d", id, wLen, MaxWrappedKeyLen)
		}
		w := r.take(wLen, "wrapped key")
		if r.err != nil {
			break
		}
		if err := ValidKeyID(id); err != nil {
			r.fail("%v", err)
			break
		}
		if containsID(e.Stanzas, id) {
			r.fail("key id %q is repeated", id)
			break
		}
		e.Stanzas = append(e.Stanzas, Stanza{KeyID: id, WrappedKey: append([]byte(nil), w...)})
	}
	ctLen := r.u32("payload length")
	if r.err == nil && (ctLen < tagSize || ctLen > MaxPlaintextLen+tagSize) {
		r.fail("payload is %d bytes long; it must be %d to %d", ctLen, tagSize, MaxPlaintextLen+tagSize)
	}
	ct := r.take(ctLen, "payload")
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(data) {
		return nil, formatErr("%d unexpected bytes after the payload", len(data)-r.off)
	}
	e.Ciphertext = ct
	if !own {
		e.Ciphertext = append([]byte(nil), ct...)
	}
	return e, nil
}
