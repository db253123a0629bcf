package idp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// AssertionLifetime is how long a private_key_jwt assertion is valid.
const AssertionLifetime = time.Minute

// assertion signs a fresh client assertion (RFC 7523 2.2, OpenID Connect
// Core 9): issuer and subject the client id, audience the token endpoint,
// a random jti, valid for AssertionLifetime.
func (c *Client) assertion(tokenURL string) (string, error) {
	what := "tokens." + c.src.Name + ".private_key"
	key, alg, err := parseSigningKey(c.src.PrivateKeyPEM)
	if err != nil {
		return "", fail.Mark(fail.Usage, fmt.Errorf("%s: %w", what, err))
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if c.src.KeyID != "" {
		opts = opts.WithHeader("kid", c.src.KeyID)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", fail.Mark(fail.Usage, fmt.Errorf("%s: cannot sign with this key: %w", what, err))
	}
	id := make([]byte, 16)
	rand.Read(id)
	now := c.now()
	claims := jwt.Claims{
		Issuer:    c.src.ClientID,
		Subject:   c.src.ClientID,
		Audience:  jwt.Audience{tokenURL},
		ID:        hex.EncodeToString(id),
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
		Expiry:    jwt.NewNumericDate(now.Add(AssertionLifetime)),
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

// parseSigningKey reads one PEM private key (PKCS #8, PKCS #1 or SEC 1)
// and picks its JWS algorithm. Errors never quote the key.
func parseSigningKey(data []byte) (crypto.Signer, jose.SignatureAlgorithm, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, "", errors.New("not a PEM private key")
	}
	if more, _ := pem.Decode(rest); more != nil {
		return nil, "", errors.New("holds more than one PEM block; give one private key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, "", errors.New("the private key does not parse")
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, "", errors.New("the RSA key is shorter than 2048 bits")
		}
		return k, jose.RS256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return k, jose.ES256, nil
		case elliptic.P384():
			return k, jose.ES384, nil
		}
		return nil, "", errors.New("the EC key is not on P-256 or P-384")
	case ed25519.PrivateKey:
		return k, jose.EdDSA, nil
	}
	return nil, "", errors.New("the key is not RSA, ECDSA or Ed25519")
}
