package redact

import (
	"bytes"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestWriterEmptyAndShortValues(t *testing.T) {
	// An empty secret used to panic the output filter; 1- and 2-byte
	// secrets turned every "a" into [redacted].
	var buf bytes.Buffer
	w := NewWriter(&buf, []string{"", "a", "42"})
	w.Write([]byte("a banana costs 42 cents\n"))
	w.Flush()
	if buf.String() != "a banana costs 42 cents\n" {
		t.Fatalf("output wrecked: %q", buf.String())
	}
	var short []string
	for _, v := range []string{"", "a", "42", "long-enough"} {
		if TooShort(v) {
			short = append(short, v)
		}
	}
	if strings.Join(short, ",") != "a,42" {
		t.Fatalf("TooShort = %v", short)
	}
}

func TestWriterSplitAcrossWrites(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, []string{"abcd"})
	for _, chunk := range []string{"xxab", "cdyy", "a", "b", "c", "d", "ab"} {
		w.Write([]byte(chunk))
	}
	w.Flush()
	if buf.String() != "xx[redacted]yy[redacted]ab" {
		t.Fatalf("got %q", buf.String())
	}
}

func TestWriterHoldsBackOnlyPossibleStarts(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf, []string{"hunter2-pass"})
	w.Write([]byte("Password: "))
	if buf.String() != "Password: " {
		t.Fatalf("prompt held back: %q", buf.String())
	}
	w.Write([]byte("ok hun"))
	if buf.String() != "Password: ok " {
		t.Fatalf("got %q", buf.String())
	}
	w.Write([]byte("ter2-pass!"))
	if buf.String() != "Password: ok [redacted]!" {
		t.Fatalf("got %q", buf.String())
	}
}

func TestURLEncodingVariants(t *testing.T) {
	v := "p@ss w/rd&x=1"
	msg := strings.Join([]string{
		"p%40ss+w%2Frd%26x%3D1",   // Go QueryEscape, Python quote_plus
		"p%40ss%20w%2frd%26x%3d1", // lower-case hex
		"p%40ss%20w/rd%26x%3D1",   // Python quote (safe "/")
		"p%40ss%20w%2Frd%26x%3D1", // quote with safe=""
		"p@ss%20w%2Frd&x=1",       // Go PathEscape
		"P@SS W/RD&X=1", "cEBzcyB3L3JkJng9MQ", "7040737320772f726426783d31", "7040737320772F726426783D31",
	}, " | ")
	got := String(msg, []string{v})
	if strings.Trim(strings.ReplaceAll(got, "[redacted]", ""), " |") != "" {
		t.Fatalf("left: %q", got)
	}
}

func TestFormsOfMultiLineValues(t *testing.T) {
	v := "-----BEGIN-----\nline\"two\\x\twith-tab\nend-----\n"
	msg := `a "line\"two\\x\twith-tab" b line"two\x	with-tab c`
	if got := String(msg, []string{v}); strings.Contains(got, "line") {
		t.Fatalf("a line leaked: %q", got)
	}
}

// A value base64- or base32-encoded after a prefix of any length (an HTTP
// Basic header for "user:" or "deploy:" plus the password, as curl -v
// prints it) is redacted, through the stream filter too; only the few
// characters the prefix (or what follows) also decides are left. Fails on
// c5e921c for every prefix length not a multiple of 3 (base64) or 5
// (base32).
func TestShiftedEncodingsAreRedacted(t *testing.T) {
	secret := "s3cr3t-P@ssw0rd!"
	for n := 0; n <= 8; n++ {
		prefix := strings.Repeat("u", n)
		if n >= 1 {
			prefix = prefix[:n-1] + ":"
		}
		for name, c := range map[string]struct{ encoded, ofPrefix string }{
			"base64":    {base64.StdEncoding.EncodeToString([]byte(prefix + secret)), base64.RawStdEncoding.EncodeToString([]byte(prefix))},
			"base64url": {base64.RawURLEncoding.EncodeToString([]byte(prefix + secret + "\n")), base64.RawURLEncoding.EncodeToString([]byte(prefix))},
			"base32":    {base32.StdEncoding.EncodeToString([]byte(prefix + secret)), base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(prefix))},
			"base32hex": {base32.HexEncoding.EncodeToString([]byte(prefix + secret + "tail")), base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(prefix + "tail"))},
		} {
			line := "> Authorization: Basic " + c.encoded + "\n"
			got := String(line, []string{secret})
			left := strings.TrimSuffix(strings.TrimPrefix(strings.Replace(got, Placeholder, "", 1), "> Authorization: Basic "), "\n")
			if !strings.Contains(got, Placeholder) || len(left) > len(c.ofPrefix)+8 {
				t.Errorf("%s after the %d-byte prefix %q: %q left of %q (the prefix alone encodes to %d characters)", name, n, prefix, left, c.encoded, len(c.ofPrefix))
				continue
			}
			var buf bytes.Buffer
			w := NewWriter(&buf, []string{secret})
			for i := 0; i < len(line); i += 7 {
				w.Write([]byte(line[i:min(i+7, len(line))]))
			}
			w.Flush()
			if buf.String() != got {
				t.Errorf("%s after %d bytes: the stream filter wrote %q, String %q", name, n, buf.String(), got)
			}
		}
	}
	// A short value's shifted forms are under MinShiftedLen: left, so that
	// short runs of unrelated base64 survive.
	if got := String(base64.StdEncoding.EncodeToString([]byte("u:abcd")), []string{"abcd"}); strings.Contains(got, Placeholder) {
		t.Errorf("a 4-byte value's 4-character shifted form was redacted: %s", got)
	}
}

// BenchmarkWriterManyMatches: a child that prints its secret again and
// again, through the stream filter with 20 values (each with its encoded
// forms). Before the filter kept each pattern's next match, every match
// searched the whole pending text for every pattern: 64 KiB in one write
// took 5 s.
func BenchmarkWriterManyMatches(b *testing.B) {
	var values []string
	for i := range 20 {
		values = append(values, fmt.Sprintf("secret-value-%02d-xyz", i))
	}
	data := bytes.Repeat([]byte(values[0]+" "), (64<<10)/(len(values[0])+1))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		w := NewWriter(io.Discard, values)
		w.Write(data)
		w.Flush()
	}
}
