//go:build !unix

package readlimit

import (
	"fmt"
	"os"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// openNonBlocking opens path for reading; without FIFOs there is nothing
// to block on.
func openNonBlocking(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fail.Mark(fail.NotFound, fmt.Errorf("%s does not exist", path))
		}
		return nil, fmt.Errorf("cannot open %s: %w", path, unwrapPath(err))
	}
	return f, nil
}
