package atomicfile_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "new", "out.txt")
	if err := atomicfile.Write(p, []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(p, []byte("two"), 0); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	info, _ := os.Stat(p)
	dinfo, _ := os.Stat(filepath.Dir(p))
	if string(b) != "two" || info.Mode().Perm() != 0o600 || dinfo.Mode().Perm() != 0o700 {
		t.Fatalf("content %q mode %o dir mode %o", b, info.Mode().Perm(), dinfo.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %d entries", len(entries))
	}
	if err := atomicfile.Write(filepath.Join(dir, "no", "such", "\x00bad"), []byte("x"), 0); err == nil {
		t.Fatal("bad path accepted")
	}
}
