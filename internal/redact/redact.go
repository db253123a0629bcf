// Package redact owns how secrets-broker keeps secret values out of what it
// prints: the forms a value takes once encoded or escaped (Forms), replacing
// them in a message (String), and a stream filter for a child's output
// (Writer).
//
// Values shorter than MinLen are not redacted: replacing every "a" or "42"
// would wreck the output and still hide nothing. Callers warn about them.
package redact

import (
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Placeholder replaces a secret value.
const Placeholder = "[redacted]"

// MinLen is the shortest value (in bytes) that is redacted.
const MinLen = 4

// MinShiftedLen is the fewest characters of a shifted base64 or base32
// form (the value encoded after a prefix, see Forms) that are redacted:
// six base64 characters are 36 bits of the value, which unrelated output
// matches by chance about once in 70 billion positions. A value of 4 to 6
// bytes is redacted in its shifted forms only where they reach this.
const MinShiftedLen = 6

// Forms returns v and the forms it takes in logs, messages and output:
// Go- and JSON-escaped (%q, toJSON), upper and lower case, base64 (standard
// and URL alphabets, padded and not, and at each of the three alignments
// a prefix can give it), base32 (padded and not, and at each of its five
// alignments), hex, the URL
// encodings (Go's QueryEscape and PathEscape, Python's quote and quote_plus,
// with upper- and lower-case hex), and every line of a multi-line value that
// is at least MinLen long, escaped too. Forms shorter than MinLen are
// dropped; the result has no duplicates.
func Forms(v string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if len(s) >= MinLen && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	// addShifted adds the characters of encode(shift filler bytes + v)
	// that no bit of the filler, nor of whatever follows v, reaches: those
	// the value alone decides, wherever it starts in the encoded stream.
	addShifted := func(encode func([]byte) string, bitsPerChar, shift int, v []byte) {
		e := encode(append(make([]byte, shift), v...))
		lo := (8*shift + bitsPerChar - 1) / bitsPerChar
		hi := 8 * (shift + len(v)) / bitsPerChar
		if hi-lo >= MinShiftedLen {
			add(e[lo:hi])
		}
	}
	if len(v) < MinLen {
		return nil
	}
	escaped := func(s string) {
		add(s)
		q := strconv.Quote(s)
		add(q[1 : len(q)-1])
		if j, err := json.Marshal(s); err == nil {
			add(string(j[1 : len(j)-1]))
		}
	}
	escaped(v)
	add(strings.ToUpper(v))
	add(strings.ToLower(v))
	b := []byte(v)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		add(enc.EncodeToString(b))
	}
	for _, enc := range []*base32.Encoding{base32.StdEncoding, base32.StdEncoding.WithPadding(base32.NoPadding), base32.HexEncoding} {
		add(enc.EncodeToString(b))
	}
	// The value encoded after a prefix whose length is not a multiple of
	// the encoding's block (an HTTP Basic header: base64 of "user:" plus
	// the password): only the characters fully determined by the value.
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for shift := range 3 {
			addShifted(enc.EncodeToString, 6, shift, b)
		}
	}
	for _, enc := range []*base32.Encoding{base32.StdEncoding.WithPadding(base32.NoPadding), base32.HexEncoding.WithPadding(base32.NoPadding)} {
		for shift := range 5 {
			addShifted(enc.EncodeToString, 5, shift, b)
		}
	}
	add(hex.EncodeToString(b))
	add(strings.ToUpper(hex.EncodeToString(b)))
	for _, u := range []string{url.QueryEscape(v), url.PathEscape(v), percent(v, "/", false), percent(v, "", true), percent(v, "", false)} {
		add(u)
		add(lowerHexEscapes(u))
	}
	if strings.ContainsAny(v, "\r\n") {
		for _, line := range strings.Split(v, "\n") {
			line = strings.TrimRight(line, "\r")
			if len(strings.TrimSpace(line)) >= MinLen {
				escaped(line)
			}
		}
	}
	return out
}

// percent encodes every byte but letters, digits, "-._~" and safe as %XX;
// plus turns spaces into "+" (Python's quote_plus) instead of %20 (quote).
func percent(s, safe string, plus bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 || strings.IndexByte(safe, c) >= 0:
			b.WriteByte(c)
		case c == ' ' && plus:
			b.WriteByte('+')
		default:
			b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	return b.String()
}

func lowerHexEscapes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			b.WriteString(strings.ToLower(s[i : i+3]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// AllForms returns the forms of every value, longest first, so that a
// longer form is replaced before a shorter one inside it.
func AllForms(values []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range values {
		for _, f := range Forms(v) {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// String replaces every form of every value in msg with Placeholder.
func String(msg string, values []string) string {
	for _, f := range AllForms(values) {
		msg = strings.ReplaceAll(msg, f, Placeholder)
	}
	return msg
}

// TooShort reports whether v is a value too short to redact (callers warn
// about it; an empty value has nothing to hide).
func TooShort(v string) bool { return v != "" && len(v) < MinLen }
