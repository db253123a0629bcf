package redact

import (
	"bytes"
	"io"
	"sync"
)

// Writer copies to an underlying writer with every form of every value
// replaced by Placeholder, also when a value is split across writes. It
// holds back only the bytes that could still be the start of a value, so an
// interactive prompt is passed on as soon as it is written.
type Writer struct {
	mu       sync.Mutex
	w        io.Writer
	patterns [][]byte
	pending  []byte
}

// NewWriter makes a Writer for values (see Forms; values shorter than MinLen
// are not redacted).
func NewWriter(w io.Writer, values []string) *Writer {
	r := &Writer{w: w}
	for _, f := range AllForms(values) {
		r.patterns = append(r.patterns, []byte(f))
	}
	return r
}

// Write filters p.
func (r *Writer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.patterns) == 0 {
		return r.w.Write(p)
	}
	r.pending = append(r.pending, p...)
	if err := r.drain(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is held back.
func (r *Writer) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drain(true)
}

// drain writes pending with every complete match replaced, keeping back
// (unless all) the longest tail that is a proper prefix of some pattern.
// Each pattern's next match is searched for once and again only once the
// text before it is consumed, so a burst of matches costs about one pass
// per pattern, not one per pattern per match.
func (r *Writer) drain(all bool) error {
	var out bytes.Buffer
	next := make([]int, len(r.patterns)) // where each pattern next matches at or after pos; -1: nowhere
	for i, pat := range r.patterns {
		next[i] = bytes.Index(r.pending, pat)
	}
	pos := 0
	for {
		at, n := -1, 0
		for i, pat := range r.patterns {
			if next[i] >= 0 && next[i] < pos {
				if j := bytes.Index(r.pending[pos:], pat); j >= 0 {
					next[i] = pos + j
				} else {
					next[i] = -1
				}
			}
			if k := next[i]; k >= 0 && (at < 0 || k < at || (k == at && len(pat) > n)) {
				at, n = k, len(pat)
			}
		}
		if at < 0 {
			break
		}
		if !all && r.longerMayMatch(r.pending[at:], n) {
			// A longer form may still match here once more arrives (a
			// padded encoding beyond its unpadded core): wait for it.
			out.Write(r.pending[pos:at])
			r.pending = append([]byte(nil), r.pending[at:]...)
			if out.Len() == 0 {
				return nil
			}
			_, err := r.w.Write(out.Bytes())
			return err
		}
		out.Write(r.pending[pos:at])
		out.WriteString(Placeholder)
		pos = at + n
	}
	r.pending = r.pending[pos:]
	keep := 0
	if !all {
		keep = r.partialTail()
	}
	out.Write(r.pending[:len(r.pending)-keep])
	r.pending = append([]byte(nil), r.pending[len(r.pending)-keep:]...)
	if out.Len() == 0 {
		return nil
	}
	_, err := r.w.Write(out.Bytes())
	return err
}

// longerMayMatch reports whether a pattern longer than n starts with all of
// rest (so that more input could complete it).
func (r *Writer) longerMayMatch(rest []byte, n int) bool {
	for _, pat := range r.patterns {
		if len(pat) > n && len(pat) > len(rest) && bytes.HasPrefix(pat, rest) {
			return true
		}
	}
	return false
}

// partialTail is the length of the longest tail of pending that some
// pattern starts with (and is longer than).
func (r *Writer) partialTail() int {
	best := 0
	for _, pat := range r.patterns {
		from := max(0, len(r.pending)-(len(pat)-1))
		for i := from; i < len(r.pending)-best; i++ {
			if r.pending[i] == pat[0] && bytes.HasPrefix(pat, r.pending[i:]) {
				best = len(r.pending) - i
				break
			}
		}
	}
	return best
}
