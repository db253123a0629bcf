// Package fail owns the small set of error classes that every part of
// secrets-broker sorts its failures into, so that the CLI can map any error to a
// stable exit code and the daemon can tell "retry later" from "give up".
//
// Errors keep their own message; a class is attached with [Mark] and read back
// with [KindOf]. The message never changes because of the class.
package fail

import (
	"errors"
	"io/fs"
	"strings"
)

// Kind classifies a failure. The zero value is [Internal].
type Kind int

// The classes, in the order of their exit codes.
const (
	// Internal is anything not classified: a bug or an unexpected condition.
	Internal Kind = iota
	// Usage is a bad flag, argument, reference or configuration.
	Usage
	// KeyUnavailable means no configured key could unwrap a data key, or the
	// key service refused (access denied, key disabled or not found).
	KeyUnavailable
	// Integrity means authenticated decryption or an integrity check failed:
	// the data was tampered with, renamed, moved or truncated.
	Integrity
	// Unavailable means a remote source (Vault, KMS) could not be reached or
	// answered with a temporary failure; retrying later may succeed.
	Unavailable
	// NotFound means the secret, entry, path or field does not exist.
	NotFound
	// Denied means the source refused the request (permission denied, bad
	// or expired credentials).
	Denied
	// Format means input could not be parsed (envelope, secrets file) or
	// is larger than its limit.
	Format
	// FileSystem means the file system refused a read or write: disk full
	// or over quota, a read-only file system, permission denied, a file too
	// large for its limit, or a path that leaves its root (a symlink).
	FileSystem
)

// ExitCode is the documented process exit code for each class
// (see docs/exit-codes.md).
func (k Kind) ExitCode() int {
	switch k {
	case Usage:
		return 2
	case KeyUnavailable:
		return 3
	case Integrity:
		return 4
	case Unavailable:
		return 5
	case NotFound:
		return 6
	case Denied:
		return 7
	case Format:
		return 8
	case FileSystem:
		return 9
	default:
		return 1
	}
}

// String names the class as it appears in logs and docs.
func (k Kind) String() string {
	switch k {
	case Usage:
		return "usage"
	case KeyUnavailable:
		return "key-unavailable"
	case Integrity:
		return "integrity"
	case Unavailable:
		return "unavailable"
	case NotFound:
		return "not-found"
	case Denied:
		return "denied"
	case Format:
		return "format"
	case FileSystem:
		return "file-system"
	default:
		return "internal"
	}
}

// Retryable reports whether a failure of this class may go away by itself.
func (k Kind) Retryable() bool { return k == Unavailable }

type marked struct {
	kind Kind
	err  error
}

func (m *marked) Error() string { return m.err.Error() }
func (m *marked) Unwrap() error { return m.err }

// Mark attaches kind to err. A nil err stays nil.
func Mark(kind Kind, err error) error {
	if err == nil {
		return nil
	}
	return &marked{kind: kind, err: err}
}

// KindOf returns the outermost class attached to err; for an unmarked
// error the file system returned (disk full, read-only, permission denied,
// a path escaping its root), [FileSystem]; else [Internal].
func KindOf(err error) Kind {
	var m *marked
	if errors.As(err, &m) {
		return m.kind
	}
	var k interface{ FailKind() Kind }
	if errors.As(err, &k) {
		return k.FailKind()
	}
	if err != nil && (errors.Is(err, fs.ErrPermission) || isFileSystemErrno(err) || strings.Contains(err.Error(), "path escapes from parent")) {
		return FileSystem
	}
	return Internal
}
