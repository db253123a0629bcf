package fail_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

type classified struct{}

func (classified) Error() string       { return "x" }
func (classified) FailKind() fail.Kind { return fail.Denied }

func TestKindsAndExitCodes(t *testing.T) {
	want := map[fail.Kind]int{fail.Internal: 1, fail.Usage: 2, fail.KeyUnavailable: 3, fail.Integrity: 4, fail.Unavailable: 5, fail.NotFound: 6, fail.Denied: 7, fail.Format: 8}
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
	if !fail.Unavailable.Retryable() || fail.Denied.Retryable() {
		t.Fatal("retryable")
	}
}
