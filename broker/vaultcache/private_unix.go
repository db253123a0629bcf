//go:build unix

package vaultcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
)

// private returns the directory the cache's entries live in: dir itself
// when the broker owns it (made 0700, and tightened to 0700 when it is
// wider), or else a subdirectory "secrets-broker.UID" of the broker's own,
// made or checked the same way. A directory someone else can list, rename
// or delete entries in is never used: another uid could delete entries, or
// brute-force the hashed names of low-entropy computed paths.
func private(dir string) (string, error) {
	dir = filepath.Clean(dir) // "dir/" would make Lstat follow a link
	info, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fail.Mark(fail.FileSystem, fmt.Errorf("cache: cannot create directory %s: %w", dir, err))
		}
		return dir, ownedPrivateDir(dir)
	case err != nil:
		return "", fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	if err := notLinkDir(dir, info); err != nil {
		return "", err
	}
	if owner(info) == os.Geteuid() {
		return dir, ownedPrivateDir(dir)
	}
	// Someone else's directory (a volume's mount point): a subdirectory of
	// our own inside it.
	sub := filepath.Join(dir, "secrets-broker."+strconv.Itoa(os.Geteuid()))
	if err := os.Mkdir(sub, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fail.Mark(fail.FileSystem, fmt.Errorf("cache: %s belongs to uid %d, and a private subdirectory cannot be made in it: %w", dir, owner(info), err))
	}
	return sub, ownedPrivateDir(sub)
}

// ownedPrivateDir checks that dir is a directory (not a link) the broker
// owns, and makes it 0700 if it is wider.
func ownedPrivateDir(dir string) error {
	info, err := os.Lstat(dir)
	if err != nil {
		return fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	if err := notLinkDir(dir, info); err != nil {
		return err
	}
	if uid := owner(info); uid != os.Geteuid() {
		return fail.Mark(fail.Usage, fmt.Errorf("cache: %s belongs to uid %d, not to the broker (uid %d): another user could read, replace or delete its entries; remove it or give cache.path a directory of the broker's own", dir, uid, os.Geteuid()))
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fail.Mark(fail.FileSystem, fmt.Errorf("cache: %s is open to other users (%s) and cannot be made 0700: %w", dir, info.Mode().Perm(), err))
		}
	}
	return nil
}

func notLinkDir(dir string, info fs.FileInfo) error {
	if info.Mode()&fs.ModeSymlink != 0 {
		return fail.Mark(fail.Usage, fmt.Errorf("cache: %s is a symbolic link; give cache.path the real directory (a link could be pointed elsewhere by whoever can change it)", dir))
	}
	if !info.IsDir() {
		return fail.Mark(fail.Usage, fmt.Errorf("cache: %s is not a directory", dir))
	}
	return nil
}

func owner(info fs.FileInfo) int {
	if uid, _, ok := fileowner.Of(info); ok {
		return uid
	}
	return -1
}
