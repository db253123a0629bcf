// Package transit owns the Vault Transit key wrapper: data keys are
// encrypted and decrypted by a named Transit key, with the secret's binding
// as AEAD associated data, so Vault itself refuses to open a data key for any
// other secret.
package transit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// KeyIDPrefix starts the id of every Transit key: "transit:MOUNT/KEY".
const KeyIDPrefix = "transit:"

var _ envelope.KeyWrapper = (*Key)(nil)

// Key wraps data keys with one Transit key.
type Key struct {
	client *api.Client
	mount  string
	name   string
}

// ParseID splits "MOUNT/KEY" (the part after "transit:"); the mount may
// contain slashes, the key name may not.
func ParseID(ref string) (mount, name string, err error) {
	i := strings.LastIndexByte(ref, '/')
	if i <= 0 || i == len(ref)-1 || strings.Contains(ref, "..") || strings.HasPrefix(ref, "/") {
		return "", "", fail.Mark(fail.Usage, fmt.Errorf("transit key %q is not MOUNT/KEY (for example transit:transit/app)", ref))
	}
	return ref[:i], ref[i+1:], nil
}

// New makes a wrapper for the key "MOUNT/KEY" on the Vault client.
func New(client *api.Client, ref string) (*Key, error) {
	mount, name, err := ParseID(ref)
	if err != nil {
		return nil, err
	}
	return &Key{client: client, mount: mount, name: name}, nil
}

// KeyID returns "transit:MOUNT/KEY".
func (k *Key) KeyID() string { return KeyIDPrefix + k.mount + "/" + k.name }

func (k *Key) write(ctx context.Context, op string, body map[string]any, b envelope.Binding) (map[string]any, error) {
	path := k.mount + "/" + op + "/" + k.name
	s, err := k.client.Logical().WriteWithContext(ctx, path, body)
	if err != nil {
		return nil, k.explain(op, path, b, err)
	}
	if s == nil || s.Data == nil {
		return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("vault transit %s for secret %q at %s returned no data", op, b.Name, path))
	}
	return s.Data, nil
}

// AssociatedData is what Transit authenticates with a wrapped data key: the
// binding's canonical encoding (docs/envelope.md, "Binding"), base64 as the
// API takes it. Vectors: testdata/associated-data.json.
func AssociatedData(b envelope.Binding) string {
	return base64.StdEncoding.EncodeToString(b.Canonical())
}

// WrapKey encrypts the data key with the Transit key.
func (k *Key) WrapKey(ctx context.Context, dataKey []byte, b envelope.Binding) ([]byte, error) {
	data, err := k.write(ctx, "encrypt", map[string]any{
		"plaintext":       base64.StdEncoding.EncodeToString(dataKey),
		"associated_data": AssociatedData(b),
	}, b)
	if err != nil {
		return nil, err
	}
	ct, _ := data["ciphertext"].(string)
	if !strings.HasPrefix(ct, "vault:") {
		return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("vault transit key %s returned no ciphertext for secret %q", k.KeyID(), b.Name))
	}
	return []byte(ct), nil
}

// UnwrapKey decrypts a data key that WrapKey encrypted for the same binding.
func (k *Key) UnwrapKey(ctx context.Context, wrapped []byte, b envelope.Binding) ([]byte, error) {
	if !strings.HasPrefix(string(wrapped), "vault:v") {
		return nil, fail.Mark(fail.Integrity, fmt.Errorf("vault transit key %s, secret %q: %w (not a Transit ciphertext)", k.KeyID(), b.Name, envelope.ErrDecrypt))
	}
	data, err := k.write(ctx, "decrypt", map[string]any{
		"ciphertext":      string(wrapped),
		"associated_data": AssociatedData(b),
	}, b)
	if err != nil {
		return nil, err
	}
	pt, _ := data["plaintext"].(string)
	dk, err := base64.StdEncoding.DecodeString(pt)
	if err != nil {
		return nil, fail.Mark(fail.Integrity, fmt.Errorf("vault transit key %s, secret %q: %w", k.KeyID(), b.Name, envelope.ErrDecrypt))
	}
	return dk, nil
}

func (k *Key) explain(op, path string, b envelope.Binding, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		switch {
		case re.StatusCode == http.StatusForbidden:
			return fail.Mark(fail.KeyUnavailable, fmt.Errorf("vault denied transit %s at %s for secret %q: %s", op, path, b.Name, msg))
		case re.StatusCode == http.StatusBadRequest && op == "decrypt" && (strings.Contains(msg, "authentication failed") || strings.Contains(msg, "invalid ciphertext")):
			return fail.Mark(fail.Integrity, fmt.Errorf("vault transit key %s, secret %q: %w", k.KeyID(), b.Name, envelope.ErrDecrypt))
		case re.StatusCode == http.StatusBadRequest && strings.Contains(msg, "not found"), re.StatusCode == http.StatusNotFound:
			return fail.Mark(fail.KeyUnavailable, fmt.Errorf("vault transit key %s (secret %q) does not exist: %s", k.KeyID(), b.Name, msg))
		case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests:
			return fail.Mark(fail.Unavailable, fmt.Errorf("vault transit %s at %s for secret %q failed with %d: %s", op, path, b.Name, re.StatusCode, msg))
		}
		return fail.Mark(fail.KeyUnavailable, fmt.Errorf("vault transit %s at %s for secret %q failed with %d: %s", op, path, b.Name, re.StatusCode, msg))
	}
	return fail.Mark(fail.Unavailable, fmt.Errorf("vault transit %s at %s for secret %q: cannot reach Vault: %w", op, path, b.Name, err))
}
