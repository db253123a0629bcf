// Package brokertest holds the fixtures the broker's packages share in
// their tests: a default local key, a directory of sealed and plain secrets,
// a log buffer safe for concurrent writes.
package brokertest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/keys"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

// LocalKey makes dir/local.key the default local key (and the only key:
// $SECRETS_BROKER_KEYS is cleared).
func LocalKey(t testing.TB, dir string) *local.Key {
	t.Helper()
	keyPath := filepath.Join(dir, "local.key")
	k, err := local.New(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(local.EnvKeyFile, keyPath)
	t.Setenv(keys.Env, "")
	return k
}

// LocalDir makes a directory with a default local key, a sealed secrets
// file (secrets.enc.yaml: db_password, api_key, tls_key), a plain file
// (token) and a template (app.tmpl), all without Vault.
func LocalDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	k := LocalKey(t, dir)
	f, err := envelope.SealFile(context.Background(), []envelope.Plain{
		{Name: "db_password", Value: []byte(`p"w$1`)},
		{Name: "api_key", Value: []byte("ak-123")},
		{Name: "tls_key", Value: []byte("-----BEGIN KEY-----\nabc\n-----END KEY-----\n")},
	}, nil, k)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"secrets.enc.yaml": f.MarshalYAML(),
		"token":            []byte("file-token"),
		"app.tmpl":         []byte("db={{ secret \"db_password\" }}\ntoken={{ secret \"token\" }}\n"),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Buffer is a strings.Builder that goroutines may write to and read from
// at once (a logger's output while a test reads it).
type Buffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
