package vault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

func certSecret(t *testing.T, serial int64, notBefore time.Time, validity time.Duration) *Secret {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "a.example.com"}, NotBefore: notBefore, NotAfter: notBefore.Add(validity)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &Secret{Data: map[string]any{"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}}
}

// The renewal point is the configured fraction of the validity, moved by at
// most 5% of it, the same every time for one certificate, and spread over
// certificates.
func TestRenewCertAtIsTheFractionWithStableJitter(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const validity = 100 * time.Hour
	points := map[time.Time]bool{}
	for i := range 50 {
		s := certSecret(t, int64(i+1), nb, validity)
		for _, frac := range []float64{0, 0.5, 0.9} {
			want := frac
			if want == 0 {
				want = DefaultCertRenewal
			}
			at, ok := s.RenewCertAt(frac)
			again, _ := s.RenewCertAt(frac)
			lo := nb.Add(time.Duration(float64(validity) * (want - 0.05)))
			hi := nb.Add(time.Duration(float64(validity) * (want + 0.05)))
			if !ok || at.Before(lo) || at.After(hi) || !again.Equal(at) {
				t.Fatalf("fraction %v: renew at %s (again %s), want a fixed point in [%s, %s]", frac, at, again, lo, hi)
			}
			if frac == 0 {
				points[at] = true
			}
		}
	}
	if len(points) < 45 {
		t.Fatalf("50 certificates share %d renewal points; want them spread", len(points))
	}
	if _, ok := (&Secret{Data: map[string]any{"password": "x"}}).RenewCertAt(0); ok {
		t.Fatal("a secret without a certificate has a renewal point")
	}
	if _, ok := (&Secret{Data: map[string]any{"certificate": "not PEM"}}).RenewCertAt(0); ok {
		t.Fatal("a certificate that does not parse has a renewal point")
	}
}

// A lease is renewed at a point drawn uniformly from 1/3 to 5/6 of its
// remaining time: wide enough that a fleet started together spreads out in
// one cycle.
func TestRenewDelayIsSpreadOverTheWindow(t *testing.T) {
	const remaining = 600 * time.Second
	var lowHalf, n int
	var lo, hi = remaining, time.Duration(0)
	for range 20000 {
		d := renewDelay(remaining)
		lo, hi = min(lo, d), max(hi, d)
		if d < remaining*7/12 { // the window's midpoint
			lowHalf++
		}
		n++
	}
	if lo < remaining/3 || hi > remaining*5/6 {
		t.Fatalf("delays from %s to %s; want within [%s, %s]", lo, hi, remaining/3, remaining*5/6)
	}
	if lo > remaining/3+5*time.Second || hi < remaining*5/6-5*time.Second {
		t.Fatalf("delays from %s to %s do not cover the window", lo, hi)
	}
	if frac := float64(lowHalf) / float64(n); frac < 0.45 || frac > 0.55 {
		t.Fatalf("%.2f of delays in the first half of the window; want about half", frac)
	}
}
