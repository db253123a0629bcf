// Package atomicfile owns replacing a file so that readers see the old
// content or the new, never a mix: write a temporary file in the same
// directory, fsync it, set its mode, rename it over the target, fsync the
// directory.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data at mode (0600 when zero). Parent directories
// are created 0700. The mode is set on the temporary file before the rename,
// so it is right whatever the umask.
func Write(path string, data []byte, mode os.FileMode) error {
	if path == "" || os.IsPathSeparator(path[len(path)-1]) {
		return fmt.Errorf("cannot write %q: it names a directory, not a file", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create directory for %s: %w", path, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer root.Close()
	return WriteIn(root, filepath.Base(path), data, mode)
}

// WriteIn replaces name, a file directly in root's directory, with data at
// mode (0600 when zero). Every step is relative to root, so a directory
// renamed or replaced by a link meanwhile is not followed elsewhere.
func WriteIn(root *os.Root, name string, data []byte, mode os.FileMode) error {
	if mode == 0 {
		mode = 0o600
	}
	shown := filepath.Join(root.Name(), name)
	var tmp *os.File
	var tmpName string
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		tmpName = "." + name + ".tmp-" + hex.EncodeToString(b[:])
		f, err := root.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("cannot write %s: %w", shown, err)
		}
		tmp = f
		break
	}
	if tmp == nil {
		return fmt.Errorf("cannot write %s: no free temporary name", shown)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			root.Remove(tmpName)
		}
	}()
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("cannot set mode of %s: %w", shown, err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("cannot write %s: %w", shown, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("cannot write %s: %w", shown, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", shown, err)
	}
	if err := root.Rename(tmpName, name); err != nil {
		return fmt.Errorf("cannot replace %s: %w", shown, err)
	}
	ok = true
	if d, err := root.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
