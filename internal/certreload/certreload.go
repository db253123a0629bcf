// Package certreload owns a TLS certificate and key kept in two files that
// something else rotates (cert-manager, a PKI agent, the broker's own pkiCert
// output): it reads them bounded, checks that they belong together, and reads
// them again when either file changes, so a client certificate or a
// listener's certificate is replaced without a restart.
package certreload

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// MaxFileLen bounds the certificate (chain) file and the key file.
const MaxFileLen = 1 << 20

// Pair is a certificate file and its key file. The zero value is not
// usable: use New.
type Pair struct {
	CertFile, KeyFile string

	mu     sync.Mutex
	stamp  [2]stamp
	cached *tls.Certificate
}

// stamp is what tells that a file changed: its size, modification time and
// identity (a rotation by rename gives a new inode with the same mtime
// granularity).
type stamp struct {
	size  int64
	mtime time.Time
	info  os.FileInfo
}

func (s stamp) same(fi os.FileInfo) bool {
	return s.info != nil && s.size == fi.Size() && s.mtime.Equal(fi.ModTime()) && os.SameFile(s.info, fi)
}

// New returns the pair of files, not yet read.
func New(certFile, keyFile string) *Pair { return &Pair{CertFile: certFile, KeyFile: keyFile} }

// Load returns the certificate, reading both files again when either
// changed since the last read. An error names the file and what to fix; it
// never holds the key.
func (p *Pair) Load() (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cfi, cerr := os.Stat(p.CertFile)
	kfi, kerr := os.Stat(p.KeyFile)
	if cerr == nil && kerr == nil && p.cached != nil && p.stamp[0].same(cfi) && p.stamp[1].same(kfi) {
		return p.cached, nil
	}
	certPEM, err := readlimit.File(p.CertFile, MaxFileLen, "the certificate file "+p.CertFile)
	if err != nil {
		return nil, usage(fmt.Errorf("cannot read the certificate: %w", err))
	}
	keyPEM, err := readlimit.File(p.KeyFile, MaxFileLen, "the key file "+p.KeyFile)
	if err != nil {
		return nil, usage(fmt.Errorf("cannot read the certificate's key: %w", err))
	}
	defer clear(keyPEM)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's messages name no file and never quote the key.
		return nil, fail.Mark(fail.Usage, fmt.Errorf("the certificate %s and key %s do not make a TLS key pair (%v): give a PEM certificate (chain) and its PEM private key", p.CertFile, p.KeyFile, err))
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("the certificate %s cannot be parsed: %w", p.CertFile, err))
		}
	}
	p.cached = &cert
	if cerr == nil && kerr == nil {
		p.stamp = [2]stamp{{cfi.Size(), cfi.ModTime(), cfi}, {kfi.Size(), kfi.ModTime(), kfi}}
	} else {
		p.stamp = [2]stamp{}
	}
	return p.cached, nil
}

func usage(err error) error {
	if k := fail.KindOf(err); k == fail.Internal || k == fail.NotFound {
		return fail.Mark(fail.Usage, err)
	}
	return err
}

// ClientCertificate is for tls.Config.GetClientCertificate: the current
// certificate at each handshake.
func (p *Pair) ClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return p.Load()
}

// ServerCertificate is for tls.Config.GetCertificate: the current
// certificate at each handshake.
func (p *Pair) ServerCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.Load()
}
