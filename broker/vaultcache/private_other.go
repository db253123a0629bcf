//go:build !unix

package vaultcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// private makes or opens dir as the root entries go through. Without POSIX
// owners and modes the broker relies on the directory's ACL (see
// docs/security.md); it still refuses a symbolic link.
func private(dir string) (*os.Root, error) {
	if info, err := os.Lstat(dir); err == nil && info.Mode()&fs.ModeSymlink != 0 {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cache: %s is a symbolic link; give cache.path the real directory", dir))
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: cannot create directory %s: %w", dir, err))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	return root, nil
}
