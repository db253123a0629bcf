package outdir_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/outdir"
)

func openDir(t *testing.T) (*outdir.Dir, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	d, err := outdir.Open(dir, outdir.Perms{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, dir
}

func spec(p string) outdir.Spec {
	return outdir.Spec{Path: p, Mode: 0o600, UID: -1, GID: -1}
}

func TestWriteModesAndUnchanged(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	d, dir := openDir(t)
	changed, err := d.Write(spec("sub/dir/a.env"), []byte("A=1\n"))
	if err != nil || !changed {
		t.Fatal(changed, err)
	}
	info, _ := os.Stat(filepath.Join(dir, "sub/dir/a.env"))
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %o under umask 000", info.Mode().Perm())
	}
	dinfo, _ := os.Stat(filepath.Join(dir, "sub"))
	if dinfo.Mode().Perm() != outdir.DefaultMode {
		t.Fatalf("parent dir mode %o", dinfo.Mode().Perm())
	}
	before := info.ModTime()
	ino := info.Sys().(*syscall.Stat_t).Ino
	time.Sleep(10 * time.Millisecond)
	changed, err = d.Write(spec("sub/dir/a.env"), []byte("A=1\n"))
	if err != nil || changed {
		t.Fatalf("unchanged content rewritten: %v %v", changed, err)
	}
	info, _ = os.Stat(filepath.Join(dir, "sub/dir/a.env"))
	if info.ModTime() != before || info.Sys().(*syscall.Stat_t).Ino != ino {
		t.Fatal("unchanged file was touched")
	}
	s := spec("sub/dir/a.env")
	s.Mode = 0o640
	if changed, _ := d.Write(s, []byte("A=1\n")); !changed {
		t.Fatal("mode change not applied")
	}
	info, _ = os.Stat(filepath.Join(dir, "sub/dir/a.env"))
	if info.Mode().Perm() != 0o640 {
		t.Fatalf("mode %o", info.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "sub/dir"))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// consul-template GH-2167: empty content never replaces a non-empty file.
func TestRefuseEmptyOverwrite(t *testing.T) {
	d, dir := openDir(t)
	d.Write(spec("tls.key"), []byte("KEY"))
	_, err := d.Write(spec("tls.key"), nil)
	if err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty overwrite: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tls.key")); string(b) != "KEY" {
		t.Fatal("previous content lost")
	}
	s := spec("tls.key")
	s.AllowEmpty = true
	if _, err := d.Write(s, nil); err != nil {
		t.Fatal(err)
	}
}

// CVE-2020-8567, consul-template GH-2156: no escape through .., absolute
// names, symlinked parents or a symlinked destination.
func TestNoEscape(t *testing.T) {
	d, dir := openDir(t)
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("original"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "parent-link"))
	os.Symlink(victim, filepath.Join(dir, "dest-link"))
	for _, p := range []string{"../x", "/etc/x", "parent-link/victim", "parent-link/new", "a/../../x"} {
		if _, err := d.Write(spec(p), []byte("pwned")); err == nil {
			t.Errorf("write %q escaped", p)
		}
	}
	_, err := d.Write(spec("dest-link"), []byte("pwned"))
	if err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("write through symlink: %v", err)
	}
	s := spec("dest-link")
	s.AllowSymlink = true
	if _, err := d.Write(s, []byte("pwned")); err == nil {
		t.Fatal("allowed symlink still escaped to an absolute target")
	}
	if b, _ := os.ReadFile(victim); string(b) != "original" {
		t.Fatalf("outside file changed: %q", b)
	}
	// A relative link inside the root is followed when allowed.
	os.WriteFile(filepath.Join(dir, "real.txt"), []byte("old"), 0o600)
	os.Symlink("real.txt", filepath.Join(dir, "inner-link"))
	s = spec("inner-link")
	s.AllowSymlink = true
	if _, err := d.Write(s, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "real.txt")); string(b) != "new" {
		t.Fatalf("link target = %q", b)
	}
	// A parent re-pointed between two renders is refused on the next write.
	os.MkdirAll(filepath.Join(dir, "app"), 0o700)
	if _, err := d.Write(spec("app/cfg"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "app"))
	os.Symlink(outside, filepath.Join(dir, "app"))
	if _, err := d.Write(spec("app/cfg"), []byte("2")); err == nil {
		t.Fatal("write through a re-pointed parent escaped")
	}
	if _, err := os.Stat(filepath.Join(outside, "cfg")); err == nil {
		t.Fatal("file created outside the root")
	}
}

// TestCrashLeavesOldOrNew kills a writer process with SIGKILL at random
// moments; the file must always hold one complete version.
func TestCrashLeavesOldOrNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	const size = 256 << 10
	seen := 0
	for round := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "SB_CRASH_WRITER="+dir, "SB_CRASH_SIZE="+strconv.Itoa(size))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until the writer has written once, then kill it at a varying
		// moment of its next writes.
		ready := make([]byte, 6)
		if _, err := io.ReadFull(stdout, ready); err != nil || string(ready) != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("writer did not start: %q %v", ready, err)
		}
		time.Sleep(time.Duration(round*3%25) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		data, err := os.ReadFile(filepath.Join(dir, "big.bin"))
		if os.IsNotExist(err) {
			continue
		}
		seen++
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != size || !bytes.Equal(data, bytes.Repeat(data[:1], size)) {
			t.Fatalf("round %d: partial or mixed file: %d bytes", round, len(data))
		}
	}
	if seen != 20 {
		t.Fatalf("the file was missing after %d of 20 rounds", 20-seen)
	}
}

// crashWriter is the child of TestCrashLeavesOldOrNew (see TestMain): it
// rewrites one file with ever-changing content until killed.
func crashWriter(dir string) {
	size, _ := strconv.Atoi(os.Getenv("SB_CRASH_SIZE"))
	d, err := outdir.Open(dir, outdir.Perms{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		// Every other write is in a batch (its directory synced at
		// EndBatch, as a render pass does): old or new all the same.
		if i%2 == 1 {
			d.BeginBatch()
		}
		if _, err := d.Write(spec("big.bin"), bytes.Repeat([]byte{byte('a' + i%26)}, size)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if i%2 == 1 {
			d.EndBatch()
		}
		if i == 0 {
			os.Stdout.WriteString("ready\n")
		}
	}
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("SB_CRASH_WRITER"); dir != "" {
		crashWriter(dir)
	}
	os.Exit(m.Run())
}

func TestWriteOwner(t *testing.T) {
	d, dir := openDir(t)
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65534 // nobody/nogroup: only root may give files away
	}
	s := spec("owned")
	s.UID, s.GID = uid, gid
	if _, err := d.Write(s, []byte("x")); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(filepath.Join(dir, "owned"))
	st := info.Sys().(*syscall.Stat_t)
	if int(st.Uid) != uid || int(st.Gid) != gid {
		t.Fatalf("owner %d:%d, want %d:%d", st.Uid, st.Gid, uid, gid)
	}
	if changed, _ := d.Write(s, []byte("x")); changed {
		t.Fatal("unchanged owned file rewritten")
	}
}

// Leftovers of an interrupted write are removed by the next write once they
// are a minute old; fresh ones (a concurrent writer's) are kept.
func TestStaleTempFilesRemoved(t *testing.T) {
	d, dir := openDir(t)
	stale := filepath.Join(dir, ".a.env.tmp-deadbeef0000")
	fresh := filepath.Join(dir, ".a.env.tmp-0123456789ab")
	os.WriteFile(stale, []byte("partial"), 0o600)
	os.WriteFile(fresh, []byte("partial"), 0o600)
	old := time.Now().Add(-2 * time.Minute)
	os.Chtimes(stale, old, old)
	if _, err := d.Write(spec("a.env"), []byte("A=1\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("stale temporary file kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("fresh temporary file removed")
	}
}
