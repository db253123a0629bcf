package fail_test

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

type classified struct{}

func (classified) Error() string       { return "x" }
func (classified) FailKind() fail.Kind { return fail.Denied }

func TestKindsAndExitCodes(t *testing.T) {
	want := map[fail.Kind]int{fail.Internal: 1, fail.Usage: 2, fail.KeyUnavailable: 3, fail.Integrity: 4, fail.Unavailable: 5, fail.NotFound: 6, fail.Denied: 7, fail.Format: 8, fail.FileSystem: 9}
	for k, code := range want {
		if k.ExitCode() != code {
			t.Errorf("%s exits %d, want %d", k, k.ExitCode(), code)
		}
	}
	base := errors.New("boom")
	err := fmt.Errorf("context: %w", fail.Mark(fail.Integrity, base))
	if fail.KindOf(err) != fail.Integrity || !errors.Is(err, base) || err.Error() != "context: boom" {
		t.Fatalf("marking changed the error: %v", err)
	}
	if fail.KindOf(fmt.Errorf("w: %w", classified{})) != fail.Denied {
		t.Fatal("FailKind not honoured")
	}
	if fail.KindOf(base) != fail.Internal || fail.Mark(fail.Usage, nil) != nil {
		t.Fatal("unmarked error or nil")
	}
	for _, fsErr := range []error{
		&os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC},
		&os.PathError{Op: "open", Path: "/x", Err: syscall.EROFS},
		&os.PathError{Op: "open", Path: "/x", Err: syscall.EACCES},
		fmt.Errorf("write: %w", &os.PathError{Op: "write", Path: "/x", Err: syscall.EDQUOT}),
	} {
		if fail.KindOf(fsErr) != fail.FileSystem || fail.KindOf(fsErr).ExitCode() != 9 {
			t.Errorf("%v is %s, want file-system (exit 9)", fsErr, fail.KindOf(fsErr))
		}
	}
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := root.Open("../escape"); fail.KindOf(err) != fail.FileSystem {
		t.Errorf("path escape %v is %s", err, fail.KindOf(err))
	}
	if !fail.Unavailable.Retryable() || fail.Denied.Retryable() {
		t.Fatal("retryable")
	}
}
