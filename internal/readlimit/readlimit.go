// Package readlimit owns how secrets-broker reads input it does not trust
// (envelopes, secrets files, configs, templates, plain secret files,
// standard input): every read is bounded before it happens, a file that must
// be a regular file is opened without blocking (a FIFO or a device is refused
// instead of hanging), a read from a pipe or a terminal stops when the
// context ends, and a YAML document is bounded before its tree is built.
package readlimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// TooLarge reports input over its limit, as a format error (exit 8) that
// names what was read and the limit.
func TooLarge(what string, limit int64) error {
	return fail.Mark(fail.Format, fmt.Errorf("%s is larger than %d bytes, the limit for it; nothing of it was used", what, limit))
}

// File reads the regular file at path, at most limit bytes. It never blocks
// on a FIFO or a device: those are refused. what names the file in errors.
func File(path string, limit int64, what string) ([]byte, error) {
	f, info, err := Open(path, what)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readRegular(f, info.Size(), limit, what)
}

// readRegular reads a regular file of the given size into one buffer of
// that size (a file that grows meanwhile is read on, still bounded).
func readRegular(f *os.File, size, limit int64, what string) ([]byte, error) {
	if size > limit {
		return nil, TooLarge(what, limit)
	}
	buf := make([]byte, size+1)
	n, err := io.ReadFull(f, buf)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return buf[:n], nil
	case err != nil:
		clear(buf)
		return nil, fmt.Errorf("cannot read %s: %w", what, err)
	}
	// The file grew after it was measured: read the rest, bounded.
	rest, err := readAll(f, limit-int64(n), what)
	if err != nil {
		clear(buf)
		return nil, err
	}
	return append(buf, rest...), nil
}

// Open opens the regular file at path for reading without blocking: a
// FIFO, socket or device is refused at once (opening a FIFO would wait for
// a writer). The caller closes the file.
func Open(path, what string) (*os.File, os.FileInfo, error) {
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, nil, err
	}
	info, err := regular(f, what)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

// regular returns f's information, or an error when f is not a regular file.
func regular(f *os.File, what string) (os.FileInfo, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", what, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("%s is not a regular file (%s); secrets-broker reads only regular files there, so that it never waits on a pipe or device", what, info.Mode().Type()))
	}
	return info, nil
}

// Opened reads f, which must be a regular file, at most limit bytes.
func Opened(f *os.File, limit int64, what string) ([]byte, error) {
	info, err := regular(f, what)
	if err != nil {
		return nil, err
	}
	return readRegular(f, info.Size(), limit, what)
}

// Bounded reads r to its end, at most limit bytes.
func Bounded(r io.Reader, limit int64, what string) ([]byte, error) {
	return readAll(r, limit, what)
}

// readAll reads r to its end, at most limit bytes. It reads into chunks
// and copies them into one buffer of the exact size at the end, so the peak
// is about twice the input, not the 3-4 times of a doubling buffer.
func readAll(r io.Reader, limit int64, what string) ([]byte, error) {
	const chunk = 256 << 10
	var chunks [][]byte
	total := int64(0)
	drop := func() {
		for _, c := range chunks {
			clear(c)
		}
	}
	for {
		buf := make([]byte, min(chunk, limit+1-total))
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			chunks = append(chunks, buf[:n])
			total += int64(n)
		}
		if total > limit {
			drop()
			return nil, TooLarge(what, limit)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			drop()
			return nil, fmt.Errorf("cannot read %s: %w", what, err)
		}
	}
	out := make([]byte, 0, total)
	for _, c := range chunks {
		out = append(out, c...)
		clear(c)
	}
	return out, nil
}

// Stream reads r (standard input, a pipe, a terminal) to its end, at most
// limit bytes. When ctx ends first (Ctrl-C, SIGTERM) it returns ctx's error
// at once and whatever was read is dropped.
func Stream(ctx context.Context, r io.Reader, limit int64, what string) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := readAll(r, limit, what)
		done <- result{data, err}
	}()
	select {
	case res := <-done:
		return res.data, res.err
	case <-ctx.Done():
		go func() { clear((<-done).data) }()
		return nil, fmt.Errorf("stopped reading %s: %w", what, ctx.Err())
	}
}

// Path reads the file at path, which may be a regular file or a pipe (a
// FIFO, /dev/stdin, a shell's <(...)), at most limit bytes. Opening and
// reading stop when ctx ends.
func Path(ctx context.Context, path string, limit int64, what string) ([]byte, error) {
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		ch <- opened{f, err}
	}()
	var o opened
	select {
	case o = <-ch:
	case <-ctx.Done():
		go func() {
			if o := <-ch; o.f != nil {
				o.f.Close()
			}
		}()
		return nil, fmt.Errorf("stopped opening %s: %w", what, ctx.Err())
	}
	if o.err != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot read %s: %w", what, unwrapPath(o.err)))
	}
	defer o.f.Close()
	if info, err := o.f.Stat(); err == nil && info.Mode().IsRegular() {
		return readRegular(o.f, info.Size(), limit, what)
	}
	return Stream(ctx, o.f, limit, what)
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
