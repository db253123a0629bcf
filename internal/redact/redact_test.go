package redact

import (
	"bytes"
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
