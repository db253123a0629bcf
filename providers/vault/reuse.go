package vault

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// DefaultCertRenewal is the point of a certificate's validity at which a
// fresh one is issued: two thirds, as Vault Agent renews leases.
const DefaultCertRenewal = 2.0 / 3.0

// certJitter spreads renewal points: each certificate renews within +-5% of
// its validity around the configured point.
const certJitter = 0.05

// Certificate returns the validity of the certificate a PKI issue or sign
// returned (the "certificate" field, PEM). ok is false when the secret
// holds none.
func (s *Secret) Certificate() (notBefore, notAfter time.Time, serialSum [32]byte, ok bool) {
	text, _ := s.Data["certificate"].(string)
	if text == "" {
		return time.Time{}, time.Time{}, serialSum, false
	}
	block, _ := pem.Decode([]byte(text))
	if block == nil || block.Type != "CERTIFICATE" {
		return time.Time{}, time.Time{}, serialSum, false
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !cert.NotAfter.After(cert.NotBefore) {
		return time.Time{}, time.Time{}, serialSum, false
	}
	return cert.NotBefore, cert.NotAfter, sha256.Sum256(block.Bytes), true
}

// RenewCertAt is when a fresh certificate should replace the one s holds:
// at fraction (0 < fraction < 1; zero means DefaultCertRenewal) of its
// validity, moved by up to 5% of the validity either way. The move is drawn
// from the certificate itself, so every process that holds the same
// certificate (a daemon and a restarted broker reading its cache) agrees on
// the point, and different certificates spread out. ok is false when s
// holds no certificate.
func (s *Secret) RenewCertAt(fraction float64) (at time.Time, ok bool) {
	notBefore, notAfter, sum, ok := s.Certificate()
	if !ok {
		return time.Time{}, false
	}
	if fraction <= 0 || fraction >= 1 {
		fraction = DefaultCertRenewal
	}
	u := float64(binary.BigEndian.Uint64(sum[:8])) / float64(^uint64(0)) // uniform in [0,1]
	f := min(max(fraction+(2*u-1)*certJitter, 0.05), 0.95)
	return notBefore.Add(time.Duration(float64(notAfter.Sub(notBefore)) * f)), true
}

// LeaseStatus is what Vault says about a lease it still holds.
type LeaseStatus struct {
	TTL       time.Duration
	Renewable bool
}

// LookupLease asks Vault (sys/leases/lookup, allowed by Vault's default
// policy) whether lease id is still valid and for how long. A lease Vault
// no longer holds is a NotFound error.
func (c *Client) LookupLease(ctx context.Context, id string) (LeaseStatus, error) {
	raw, err := c.api.Sys().LookupWithContext(ctx, id)
	if err != nil {
		e := classify("lookup lease", "sys/leases/lookup", "", err)
		if e.Status == 400 {
			e.Kind = fail.NotFound // "invalid lease": revoked or expired
		}
		return LeaseStatus{}, e
	}
	if raw == nil || raw.Data == nil {
		return LeaseStatus{}, &Error{Op: "lookup lease", Path: "sys/leases/lookup", Kind: fail.NotFound, Message: "no such lease"}
	}
	ttl, err := Seconds(raw.Data["ttl"])
	if err != nil {
		return LeaseStatus{}, fmt.Errorf("vault: sys/leases/lookup answered without a usable ttl: %w", err)
	}
	renewable, _ := raw.Data["renewable"].(bool)
	return LeaseStatus{TTL: time.Duration(ttl) * time.Second, Renewable: renewable}, nil
}

// MayRequest asks Vault (sys/capabilities-self, allowed by Vault's default
// policy) whether the broker's current token may make ref's request: read
// (or list) a path, or write to it when ref has parameters. A kept response
// is reused only when the identity that would fetch it now is allowed to.
func (c *Client) MayRequest(ctx context.Context, ref Ref) (bool, error) {
	caps, err := c.api.Sys().CapabilitiesSelfWithContext(ctx, ref.Path)
	if err != nil {
		return false, ref.hide(classify("capabilities", "sys/capabilities-self", ref.String(), err))
	}
	need := []string{"read"}
	switch {
	case ref.List:
		need = []string{"list"}
	case len(ref.Params) > 0:
		need = []string{"update", "create"}
	}
	for _, c := range caps {
		if c == "root" || slices.Contains(need, c) {
			return true, nil
		}
	}
	return false, nil
}

// Seconds reads a number of seconds Vault answered (a ttl): a JSON number
// as the client decodes it, or a float.
func Seconds(v any) (int64, error) {
	switch v := v.(type) {
	case json.Number:
		return v.Int64()
	case float64:
		return int64(v), nil
	}
	return 0, errors.New("no number of seconds")
}
