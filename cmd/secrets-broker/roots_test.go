package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"testing"
)

// With no CA bundle on the system (the FROM scratch image has none), the
// binary still trusts the public roots: Mozilla's, compiled in
// (golang.org/x/crypto/x509roots/fallback). testdata/isrg-root-x1.pem is
// one of them (Let's Encrypt's), public data. Run in a child process,
// because the system pool is read once per process.
func TestPublicRootsWithoutASystemBundle(t *testing.T) {
	if os.Getenv("SB_ROOTS_CHILD") == "1" {
		data, _ := os.ReadFile("testdata/isrg-root-x1.pem")
		block, _ := pem.Decode(data)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
			t.Fatalf("a public root is not trusted without a system bundle: %v", err)
		}
		return
	}
	empty := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPublicRootsWithoutASystemBundle$", "-test.count=1")
	cmd.Env = append(os.Environ(), "SB_ROOTS_CHILD=1", "SSL_CERT_FILE="+empty+"/none.pem", "SSL_CERT_DIR="+empty)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}
