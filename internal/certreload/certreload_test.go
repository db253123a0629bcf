package certreload_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/certreload"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/testca"
)

// The pair is read once while the files stay as they are, and again when
// either is replaced.
func TestLoadReadsAgainOnlyWhenTheFilesChange(t *testing.T) {
	ca := testca.New(t, "ca")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, "one", crt, key)
	p := certreload.New(crt, key)
	a, err := p.Load()
	if err != nil || a.Leaf.Subject.CommonName != "one" {
		t.Fatalf("Load: %v %v", a, err)
	}
	if b, _ := p.Load(); b != a {
		t.Fatal("unchanged files were read again")
	}
	ca.WritePair(t, "two", crt, key)
	b, err := p.Load()
	if err != nil || b.Leaf.Subject.CommonName != "two" {
		t.Fatalf("after rotation: %v %v", b, err)
	}
}

// A key that is not the certificate's, a missing file and a FIFO are
// configuration errors naming the files, never quoting the key.
func TestBadPairsAreNamed(t *testing.T) {
	ca := testca.New(t, "ca")
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	ca.WritePair(t, "a", crt, key)
	_, otherKey := ca.Issue(t, "b")
	wrongKey := filepath.Join(dir, "b.key")
	os.WriteFile(wrongKey, otherKey, 0o600)
	_, err := certreload.New(crt, wrongKey).Load()
	if err == nil || fail.KindOf(err) != fail.Usage || !strings.Contains(err.Error(), "b.key") || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("a mismatched key: %v", err)
	}
	_, err = certreload.New(filepath.Join(dir, "none.crt"), key).Load()
	if err == nil || fail.KindOf(err) != fail.Usage || !strings.Contains(err.Error(), "none.crt") {
		t.Fatalf("a missing certificate: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := certreload.New(crt, fifo).Load(); err == nil {
		t.Fatal("a FIFO was read as a key")
	}
}
