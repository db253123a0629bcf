// Package local owns the local key: a 256-bit key in a file made by
// "secrets-broker keygen", used to wrap data keys with AES-256-GCM. It is the
// default key source, so everything runs without Vault or AWS.
package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// KeyIDPrefix starts the id of every local key.
const KeyIDPrefix = "local:"

const keyLinePrefix = "SB-LOCAL-KEY-1:"

// EnvKeyFile names the environment variable that overrides the default key
// file path.
const EnvKeyFile = "SECRETS_BROKER_LOCAL_KEY"

var _ envelope.KeyWrapper = (*Key)(nil)

// Key is a local key-encryption key.
type Key struct {
	id   string
	aead cipher.AEAD // AES-256-GCM under the derived key-encryption key; safe for concurrent use
}

// Generate makes a new random key.
func Generate() *Key {
	secret := make([]byte, 32)
	rand.Read(secret)
	k, _ := fromSecret(secret)
	return k
}

func fromSecret(secret []byte) (*Key, error) {
	if len(secret) != 32 {
		return nil, fmt.Errorf("key is %d bytes long, want 32", len(secret))
	}
	sum := sha256.Sum256(append([]byte("secrets-broker/local key id\x00"), secret...))
	kek, err := hkdf.Key(sha256.New, secret, nil, "secrets-broker/v1 local wrap", 32)
	if err != nil {
		return nil, err
	}
	defer clear(kek)
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Key{id: KeyIDPrefix + hex.EncodeToString(sum[:16]), aead: aead}, nil
}

// KeyID returns "local:" and the key's fingerprint.
func (k *Key) KeyID() string { return k.id }

// DefaultPath is where the key lives when none is named: $SECRETS_BROKER_LOCAL_KEY,
// else $XDG_CONFIG_HOME/secrets-broker/local.key (~/.config/...).
func DefaultPath() (string, error) {
	if p := os.Getenv(EnvKeyFile); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the default local key file (set %s): %w", EnvKeyFile, err)
	}
	return filepath.Join(dir, "secrets-broker", "local.key"), nil
}

// Save writes a new key file at path, mode 0600, creating its directory
// 0700. It never overwrites an existing file, and a failed write (a full
// disk) leaves nothing behind: the key is written and synced to a temporary
// file in the same directory, which is then linked into place (link fails
// if the path exists) and removed.
func Save(path string, secret []byte) error {
	k, err := fromSecret(secret)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the directory for key file %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		return existsErr(path)
	}
	tmp, err := os.CreateTemp(dir, ".local.key-*")
	if err != nil {
		return fmt.Errorf("cannot create key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	content := fmt.Sprintf("# secrets-broker local key, created %s. Keep it private (mode 0600); back it up.\n# key id: %s\n%s%s\n",
		time.Now().UTC().Format(time.RFC3339), k.KeyID(), keyLinePrefix, base64.StdEncoding.EncodeToString(secret))
	_, err = io.WriteString(tmp, content)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cannot write key file %s (nothing was left behind): %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return existsErr(path)
		}
		return fmt.Errorf("cannot create key file %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func existsErr(path string) error {
	return fail.Mark(fail.Usage, fmt.Errorf("key file %s already exists; not overwriting it (a lost key means lost secrets)", path))
}

// New makes a key file at path and returns the key.
func New(path string) (*Key, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	defer clear(secret)
	if err := Save(path, secret); err != nil {
		return nil, err
	}
	return fromSecret(secret)
}

// Load reads a key file. It refuses a file that group or others can read or
// write, or that another user owns, as ssh does with private keys.
func Load(path string) (*Key, error) {
	f, info, err := readlimit.Open(path, "local key file "+path)
	if err != nil {
		if fail.KindOf(err) == fail.NotFound {
			return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("local key file %s does not exist; create one with 'secrets-broker keygen'", path))
		}
		return nil, fail.Mark(fail.KeyUnavailable, err)
	}
	defer f.Close()
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("local key file %s has mode %04o, which lets others read or change it; run 'chmod 600 %s'", path, perm, path))
	}
	if uid, _, ok := fileowner.Of(info); ok && uid != os.Geteuid() {
		return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("local key file %s belongs to uid %d, not to the user the broker runs as (uid %d): whoever owns it can change it or its mode; run 'chown %d %s' if it is yours", path, uid, os.Geteuid(), os.Geteuid(), path))
	}
	data, err := readlimit.Bounded(f, 64<<10, "local key file "+path)
	if err != nil {
		return nil, fail.Mark(fail.KeyUnavailable, err)
	}
	defer clear(data)
	return parse(data, path)
}

func parse(data []byte, path string) (*Key, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	var found *Key
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if !strings.HasPrefix(text, keyLinePrefix) || found != nil {
			return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("local key file %s, line %d: expected one line %q followed by the base64 key", path, line, keyLinePrefix))
		}
		secret, err := base64.StdEncoding.Strict().DecodeString(text[len(keyLinePrefix):])
		if err != nil || len(secret) != 32 {
			clear(secret)
			return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("local key file %s, line %d: the key is not 32 bytes of base64", path, line))
		}
		found, err = fromSecret(secret)
		clear(secret)
		if err != nil {
			return nil, err
		}
	}
	if found == nil {
		return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("local key file %s has no key line (%q...)", path, keyLinePrefix))
	}
	return found, nil
}

func (k *Key) aad(b envelope.Binding) []byte {
	out := []byte("secrets-broker/local-wrap/v1\x00" + k.id + "\x00")
	return append(out, b.Canonical()...)
}

// WrapKey seals a data key with AES-256-GCM, the binding as associated data.
func (k *Key) WrapKey(_ context.Context, dataKey []byte, b envelope.Binding) ([]byte, error) {
	aead := k.aead
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(dataKey)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, dataKey, k.aad(b)), nil
}

// UnwrapKey opens a data key that WrapKey sealed for the same binding.
func (k *Key) UnwrapKey(_ context.Context, wrapped []byte, b envelope.Binding) ([]byte, error) {
	aead := k.aead
	if len(wrapped) < aead.NonceSize()+aead.Overhead() {
		return nil, fail.Mark(fail.Integrity, envelope.ErrDecrypt)
	}
	dek, err := aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], k.aad(b))
	if err != nil {
		return nil, fail.Mark(fail.Integrity, envelope.ErrDecrypt)
	}
	return dek, nil
}
