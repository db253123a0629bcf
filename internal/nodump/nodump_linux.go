//go:build linux

package nodump

import (
	"fmt"

	"golang.org/x/sys/unix"
)

func apply() error {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("cannot mark the process not dumpable (prctl PR_SET_DUMPABLE): %w", err)
	}
	return nil
}

// Dumpable reports whether the calling process is dumpable (for tests and
// the health report).
func Dumpable() (bool, error) {
	v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		return false, err
	}
	return v != 0, nil
}
