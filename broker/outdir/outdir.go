// Package outdir owns writing the broker's outputs beneath one directory:
// each file atomically (temporary file, fsync, rename), never outside the
// directory (os.Root), with its mode and owner, bundles that switch
// together, unchanged content left alone, and the directories it creates.
package outdir

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
)

// Dir writes files beneath one directory and never outside it: every
// path is resolved with os.Root (openat-style), on every write, so "..",
// absolute names and symlinks pointing out, even ones re-pointed between two
// renders, cannot escape it.
type Dir struct {
	root  *os.Root
	dir   string
	perms Perms
	// swept are the directories whose leftover temporary files were
	// removed: once per directory, not on every write (reading a
	// directory of N outputs after each of N writes cost O(N^2)).
	sweptMu sync.Mutex
	swept   map[string]bool
	// owed, during a batch (BeginBatch), are the directories whose fsync
	// after a rename is owed: EndBatch syncs each once, instead of once per
	// file written in it.
	owedMu sync.Mutex
	owed   map[string]bool
}

// BeginBatch defers the directory fsync of Write until EndBatch: a pass
// writing N files in one directory syncs it once. Each file is still
// written, synced and renamed into place one by one, so a crash leaves
// every file old or new; until EndBatch a rename may not be durable yet.
func (d *Dir) BeginBatch() {
	d.owedMu.Lock()
	d.owed = map[string]bool{}
	d.owedMu.Unlock()
}

// EndBatch syncs every directory a Write renamed a file into since
// BeginBatch.
func (d *Dir) EndBatch() {
	d.owedMu.Lock()
	owed := d.owed
	d.owed = nil
	d.owedMu.Unlock()
	for dir := range owed {
		syncDir(d.root, dir)
	}
}

// syncDirSoon syncs dir now, or at EndBatch during a batch.
func (d *Dir) syncDirSoon(dir string) {
	d.owedMu.Lock()
	if d.owed != nil {
		d.owed[dir] = true
		d.owedMu.Unlock()
		return
	}
	d.owedMu.Unlock()
	syncDir(d.root, dir)
}

// Perms are the mode and group of the directories the writer creates
// (output_root itself when missing, parents of outputs, bundle versions),
// so an app running as another user reads the files through a shared group
// (a Kubernetes pod's fsGroup).
type Perms struct {
	Mode fs.FileMode // default 0750
	// SetGroup gives new directories the group GID; otherwise they keep
	// the group they inherit.
	SetGroup bool
	GID      int
}

// DefaultMode lets the owner write and the group read and traverse.
const DefaultMode fs.FileMode = 0o750

// Open opens the output root, creating it (and its missing
// parents) with perms if it is missing.
func Open(dir string, perms Perms) (*Dir, error) {
	if perms.Mode == 0 {
		perms.Mode = DefaultMode
	}
	_, err := os.Stat(dir)
	created := errors.Is(err, fs.ErrNotExist)
	if created {
		if err := os.MkdirAll(dir, perms.Mode); err != nil {
			return nil, fmt.Errorf("cannot create output_root %s: %w", dir, err)
		}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot open output_root %s: %w", dir, err)
	}
	d := &Dir{root: r, dir: dir, perms: perms}
	if created {
		if err := d.setDirPerms("."); err != nil {
			r.Close()
			return nil, fmt.Errorf("output_root %s: %w", dir, err)
		}
	}
	return d, nil
}

// setDirPerms gives a directory the writer created its mode (whatever the
// umask) and group.
func (d *Dir) setDirPerms(name string) error {
	if err := d.root.Chmod(name, d.perms.Mode); err != nil {
		return fmt.Errorf("cannot set the directory's mode: %w", err)
	}
	if d.perms.SetGroup {
		if err := d.root.Chown(name, -1, d.perms.GID); err != nil {
			return ownerErr("the directory's group", -1, d.perms.GID, err)
		}
	}
	return nil
}

// ownerErr explains a failed chown: as another user than root it needs
// CAP_CHOWN (or, for a group alone, membership of that group).
func ownerErr(what string, uid, gid int, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("cannot set %s (uid %d, gid %d): %w; setting user needs root or CAP_CHOWN, setting group needs CAP_CHOWN or membership of the group (in Kubernetes, prefer the pod's fsGroup and drop user/group)", what, uid, gid, err)
	}
	return fmt.Errorf("cannot set %s: %w", what, err)
}

// mkdirs creates the missing directories of dir beneath the root, each with
// the writer's Perms; existing ones are left as they are.
func (d *Dir) mkdirs(dir string) error {
	if dir == "." {
		return nil
	}
	cur := ""
	for _, part := range strings.Split(dir, "/") {
		cur = path.Join(cur, part)
		if _, err := d.root.Lstat(cur); err == nil {
			continue
		}
		if err := d.root.Mkdir(cur, d.perms.Mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := d.setDirPerms(cur); err != nil {
			return fmt.Errorf("%s: %w", d.where(cur), err)
		}
	}
	return nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// Spec is how one file is written.
type Spec struct {
	Path         string // relative to the output root
	Mode         fs.FileMode
	UID, GID     int // -1 leaves the owner alone
	AllowSymlink bool
	AllowEmpty   bool
}

func (d *Dir) where(p string) string { return filepath.Join(d.dir, p) }

// target resolves the destination: the path itself, or with AllowSymlink
// the target of a symlink there (one level, and still beneath the root).
func (d *Dir) target(spec Spec) (string, fs.FileInfo, error) {
	name := filepath.ToSlash(spec.Path)
	if !filepath.IsLocal(spec.Path) {
		return "", nil, fail.Mark(fail.Usage, fmt.Errorf("output %s: path must stay beneath output_root %s", spec.Path, d.dir))
	}
	info, err := d.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return name, nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("output %s: %w", d.where(spec.Path), err)
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		if !spec.AllowSymlink {
			return "", nil, fail.Mark(fail.Usage, fmt.Errorf("output %s is a symlink; refusing to write through it (set allow_symlink to write to its target beneath output_root)", d.where(spec.Path)))
		}
		link, err := d.root.Readlink(name)
		if err != nil {
			return "", nil, fmt.Errorf("output %s: %w", d.where(spec.Path), err)
		}
		if filepath.IsAbs(link) {
			return "", nil, fail.Mark(fail.Usage, fmt.Errorf("output %s is a symlink to an absolute path; only relative links beneath output_root are followed", d.where(spec.Path)))
		}
		name = path.Join(path.Dir(name), filepath.ToSlash(link))
		if !filepath.IsLocal(name) {
			return "", nil, fail.Mark(fail.Usage, fmt.Errorf("output %s links outside output_root", d.where(spec.Path)))
		}
		info, err = d.root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return name, nil, nil
		}
		if err != nil || info.Mode()&fs.ModeSymlink != 0 {
			return "", nil, fail.Mark(fail.Usage, fmt.Errorf("output %s: its link target is missing, unreadable or another link", d.where(spec.Path)))
		}
	}
	if !info.Mode().IsRegular() {
		return "", nil, fail.Mark(fail.Usage, fmt.Errorf("output %s exists and is not a regular file", d.where(spec.Path)))
	}
	return name, info, nil
}

// Unchanged reports whether the file already holds data with the mode and
// owner asked for, so that writing it would change nothing.
func (d *Dir) Unchanged(spec Spec, data []byte) (bool, error) {
	name, info, err := d.target(spec)
	if err != nil || info == nil {
		return false, err
	}
	if info.Mode().Perm() != spec.Mode.Perm() || info.Size() != int64(len(data)) {
		return false, nil
	}
	if uid, gid, ok := fileowner.Of(info); ok {
		if (spec.UID >= 0 && uid != spec.UID) || (spec.GID >= 0 && gid != spec.GID) {
			return false, nil
		}
	}
	old, err := d.root.ReadFile(name)
	if err != nil {
		return false, nil
	}
	return bytes.Equal(old, data), nil
}

// Write replaces the file atomically: a temporary file in the destination
// directory, mode and owner set on it, fsync, rename, fsync of the
// directory (at EndBatch, during a batch). A crash at any moment leaves the old file or the new one, never
// a mix. An unchanged file is not written (changed is false). Non-empty
// content is never replaced by empty content unless AllowEmpty.
func (d *Dir) Write(spec Spec, data []byte) (changed bool, err error) {
	if spec.Mode == 0 {
		spec.Mode = 0o600
	}
	same, err := d.Unchanged(spec, data)
	if err != nil || same {
		return false, err
	}
	name, info, err := d.target(spec)
	if err != nil {
		return false, err
	}
	if len(data) == 0 && info != nil && info.Size() > 0 && !spec.AllowEmpty {
		return false, fail.Mark(fail.Usage, fmt.Errorf("output %s: refusing to replace a non-empty file with empty content (set allow_empty if that is intended)", d.where(spec.Path)))
	}
	dir := path.Dir(name)
	if err := d.mkdirs(dir); err != nil {
		return false, fmt.Errorf("output %s: cannot create its directory: %w", d.where(spec.Path), err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, "."+path.Base(name)+".tmp-"+hex.EncodeToString(rnd[:]))
	if err := d.writeNew(tmp, spec, data); err != nil {
		d.root.Remove(tmp)
		return false, fmt.Errorf("output %s: %w", d.where(spec.Path), err)
	}
	if err := d.root.Rename(tmp, name); err != nil {
		d.root.Remove(tmp)
		return false, fmt.Errorf("output %s: cannot move the new file into place: %w", d.where(spec.Path), err)
	}
	d.syncDirSoon(dir)
	d.sweepOnce(dir)
	return true, nil
}

// sweepOnce removes, the first time a file is written in dir, the
// temporary files of writes that a crash interrupted (".NAME.tmp-RANDOM").
// A write that fails in this process removes its own.
func (d *Dir) sweepOnce(dir string) {
	d.sweptMu.Lock()
	if d.swept[dir] {
		d.sweptMu.Unlock()
		return
	}
	if d.swept == nil {
		d.swept = map[string]bool{}
	}
	d.swept[dir] = true
	d.sweptMu.Unlock()
	d.removeStale(dir, func(n string) bool { return strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") })
}

// removeStale removes leftovers of writes that a crash interrupted: the
// entries of dir that stale picks and that are older than a minute, so a
// concurrent writer's fresh temporary file is never touched.
func (d *Dir) removeStale(dir string, stale func(name string) bool) {
	f, err := d.root.Open(dir)
	if err != nil {
		return
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	for _, n := range names {
		if !stale(n) {
			continue
		}
		p := path.Join(dir, n)
		if info, err := d.root.Lstat(p); err == nil && time.Since(info.ModTime()) > time.Minute {
			d.root.RemoveAll(p)
		}
	}
}

// WriteBundle switches several files of one directory as one (a certificate
// and its key), the way Kubernetes updates a Secret volume: the files are
// written into a fresh hidden version directory, then one symlink,
// DIR/..NAME.data, is atomically renamed to point at it. The visible files
// are symlinks through it (DIR/tls.crt -> ..NAME.data/tls.crt), made once.
// A reader that resolves the files through the link never sees a
// certificate of one version with a key of another. Nothing is written when
// no file changed.
func (d *Dir) WriteBundle(name string, specs []Spec, data [][]byte) (changed bool, err error) {
	if len(specs) == 0 {
		return false, nil
	}
	dir := path.Dir(filepath.ToSlash(specs[0].Path))
	for _, s := range specs {
		if !filepath.IsLocal(s.Path) || path.Dir(filepath.ToSlash(s.Path)) != dir {
			return false, fail.Mark(fail.Usage, fmt.Errorf("bundle %s: every file must be in one directory beneath output_root", name))
		}
	}
	link := path.Join(dir, ".."+name+".data")
	if same, err := d.BundleUnchanged(name, specs, data); err != nil || same {
		return false, err
	}
	if err := d.mkdirs(dir); err != nil {
		return false, fmt.Errorf("bundle %s: cannot create %s: %w", name, d.where(dir), err)
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	version := ".." + name + "-" + hex.EncodeToString(rnd[:])
	vdir := path.Join(dir, version)
	if err := d.mkdirs(vdir); err != nil {
		return false, fmt.Errorf("bundle %s: %w", name, err)
	}
	cleanup := true
	defer func() {
		if cleanup {
			d.root.RemoveAll(vdir)
		}
	}()
	for i, s := range specs {
		base := path.Base(filepath.ToSlash(s.Path))
		if err := d.writeNew(path.Join(vdir, base), s, data[i]); err != nil {
			return false, fmt.Errorf("bundle %s: %w", name, err)
		}
	}
	syncDir(d.root, vdir)
	old, _ := d.root.Readlink(link)
	tmpLink := link + ".tmp-" + hex.EncodeToString(rnd[:])
	if err := d.root.Symlink(version, tmpLink); err != nil {
		return false, fmt.Errorf("bundle %s: %w", name, err)
	}
	if err := d.root.Rename(tmpLink, link); err != nil {
		d.root.Remove(tmpLink)
		return false, fmt.Errorf("bundle %s: cannot switch to the new version: %w", name, err)
	}
	cleanup = false
	for _, s := range specs {
		p := filepath.ToSlash(s.Path)
		want := path.Join(path.Base(link), path.Base(p))
		if cur, err := d.root.Readlink(p); err == nil && cur == want {
			continue
		}
		tmp := p + ".tmp-" + hex.EncodeToString(rnd[:])
		if err := d.root.Symlink(want, tmp); err != nil {
			return true, fmt.Errorf("bundle %s: %w", name, err)
		}
		if err := d.root.Rename(tmp, p); err != nil {
			d.root.Remove(tmp)
			return true, fmt.Errorf("bundle %s: %w", name, err)
		}
	}
	syncDir(d.root, dir)
	if old != "" && old != version && filepath.IsLocal(old) && strings.HasPrefix(old, ".."+name+"-") {
		d.root.RemoveAll(path.Join(dir, old))
	}
	d.removeStale(dir, func(n string) bool { return strings.HasPrefix(n, ".."+name+"-") && n != version })
	return true, nil
}

// BundleUnchanged reports whether every file of the bundle is already its
// link through DIR/..NAME.data to a file holding data with the mode and
// owner asked for.
func (d *Dir) BundleUnchanged(name string, specs []Spec, data [][]byte) (bool, error) {
	for i, s := range specs {
		p := filepath.ToSlash(s.Path)
		if link, err := d.root.Readlink(p); err != nil || link != path.Join(".."+name+".data", path.Base(p)) {
			return false, nil
		}
		s.AllowSymlink = true // the visible files are the bundle's own links
		if same, err := d.Unchanged(s, data[i]); err != nil || !same {
			return false, err
		}
	}
	return true, nil
}

// writeNew writes a new file (it must not exist) with mode and owner set
// before any content, fsynced.
func (d *Dir) writeNew(name string, spec Spec, data []byte) error {
	mode := spec.Mode
	if mode == 0 {
		mode = 0o600
	}
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create a temporary file: %w", err)
	}
	defer f.Close()
	if err := f.Chmod(mode.Perm()); err != nil {
		return fmt.Errorf("cannot set mode: %w", err)
	}
	if spec.UID >= 0 || spec.GID >= 0 {
		if err := f.Chown(spec.UID, spec.GID); err != nil {
			return ownerErr("the file's owner", spec.UID, spec.GID, err)
		}
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	return f.Close()
}

func syncDir(root *os.Root, dir string) {
	if df, err := root.Open(dir); err == nil {
		df.Sync()
		df.Close()
	}
}
