//go:build unix

package readlimit

import (
	"fmt"
	"os"
	"syscall"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// openNonBlocking opens path for reading with O_NONBLOCK, so that opening a
// FIFO with no writer returns at once instead of waiting for one.
func openNonBlocking(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, classifyOpen(path, err)
	}
	return f, nil
}

func classifyOpen(path string, err error) error {
	if os.IsNotExist(err) {
		return fail.Mark(fail.NotFound, fmt.Errorf("%s does not exist", path))
	}
	return fmt.Errorf("cannot open %s: %w", path, unwrapPath(err))
}
