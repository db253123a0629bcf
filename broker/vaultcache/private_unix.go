//go:build unix

package vaultcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
)

// private opens the directory the cache's entries live in and returns it
// as a root every entry is read and written through: dir itself when the
// broker owns it (made 0700, and tightened to 0700 when it is wider), or
// else a subdirectory "secrets-broker.UID" of the broker's own, made or
// checked the same way. A directory someone else can list, rename or delete
// entries in is never used: another uid could delete entries, or
// brute-force the hashed names of low-entropy computed paths.
//
// The last component is opened without following a link and checked
// through the open descriptor (its owner and mode, and a chmod of it): a
// link swapped in between two steps is never followed, and once open the
// directory stays the one checked, whatever is renamed in its parent.
func private(dir string) (*os.Root, error) {
	dir = filepath.Clean(dir) // "dir/" would make Lstat follow a link
	info, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: cannot create directory %s: %w", dir, err))
		}
		return openOwnedPrivate(dir)
	case err != nil:
		return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	if err := notLinkDir(dir, info); err != nil {
		return nil, err
	}
	if uid, _, ok := fileowner.Of(info); !ok || uid == os.Geteuid() {
		return openOwnedPrivate(dir)
	}
	// Someone else's directory (a volume's mount point): a subdirectory of
	// our own inside it.
	sub := filepath.Join(dir, "secrets-broker."+strconv.Itoa(os.Geteuid()))
	if err := os.Mkdir(sub, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		uid, _, _ := fileowner.Of(info)
		return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: %s belongs to uid %d, and a private subdirectory cannot be made in it: %w", dir, uid, err))
	}
	return openOwnedPrivate(sub)
}

// openOwnedPrivate opens dir, which must be a directory (not a link) the
// broker owns, makes it 0700 through the descriptor if it is wider, and
// returns it as a root, checked to be the same directory.
func openOwnedPrivate(dir string) (*os.Root, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		// O_NOFOLLOW with O_DIRECTORY answers ELOOP or ENOTDIR for a link.
		if li, lerr := os.Lstat(dir); errors.Is(err, syscall.ELOOP) || lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			return nil, linkErr(dir)
		}
		return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	if uid, _, ok := fileowner.Of(info); ok && uid != os.Geteuid() {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cache: %s belongs to uid %d, not to the broker (uid %d): another user could read, replace or delete its entries; remove it or give cache.path a directory of the broker's own", dir, uid, os.Geteuid()))
	}
	if info.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o700); err != nil {
			return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: %s is open to other users (%s) and cannot be made 0700: %w", dir, info.Mode().Perm(), err))
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cache: %w", err))
	}
	if got, err := root.Stat("."); err != nil || !os.SameFile(got, info) {
		root.Close()
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cache: %s was replaced while it was being opened; not used", dir))
	}
	return root, nil
}

func notLinkDir(dir string, info fs.FileInfo) error {
	if info.Mode()&fs.ModeSymlink != 0 {
		return linkErr(dir)
	}
	if !info.IsDir() {
		return fail.Mark(fail.Usage, fmt.Errorf("cache: %s is not a directory", dir))
	}
	return nil
}

func linkErr(dir string) error {
	return fail.Mark(fail.Usage, fmt.Errorf("cache: %s is a symbolic link; give cache.path the real directory (a link could be pointed elsewhere by whoever can change it)", dir))
}
