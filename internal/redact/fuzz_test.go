package redact

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzWriter: however the output is split into writes, the filter writes
// the same bytes as for one write, and no value of MinLen bytes or more is
// left in them.
func FuzzWriter(f *testing.F) {
	f.Add("hunter2-pass", "x hunter2-pass y hunter2", uint8(3))
	f.Add("abcd", "abcabcdabcd", uint8(1))
	f.Add("p@ss w/rd", "u=p%40ss%20w%2frd&p=p%40ss+w%2Frd", uint8(5))
	f.Add("line-one\nline-two", "a line-one b\nline-two c", uint8(2))
	f.Fuzz(func(t *testing.T, value, text string, chunk uint8) {
		if strings.Contains(value, "[") || strings.Contains(value, "]") {
			return // a value that spells the placeholder is not a useful case
		}
		size := int(chunk%16) + 1
		var whole, split bytes.Buffer
		w := NewWriter(&whole, []string{value})
		w.Write([]byte(text))
		w.Flush()
		s := NewWriter(&split, []string{value})
		for i := 0; i < len(text); i += size {
			s.Write([]byte(text[i:min(i+size, len(text))]))
		}
		s.Flush()
		if whole.String() != split.String() {
			t.Fatalf("chunked output %q differs from whole %q", split.String(), whole.String())
		}
		if len(value) >= MinLen && strings.Contains(whole.String(), value) {
			t.Fatalf("value %q left in %q", value, whole.String())
		}
	})
}
