package vaultcache_test

import (
	"errors"
	"os"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/vaultcache"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

// FuzzCacheEntry: whatever a cache file holds, Get returns the entry only
// when it is what this store sealed for this request, and otherwise refuses
// it; it never panics.
func FuzzCacheEntry(f *testing.F) {
	key := local.Generate()
	dir := f.TempDir()
	s, err := vaultcache.Open(dir, []envelope.KeyWrapper{key}, here, "approle:login-a")
	if err != nil {
		f.Fatal(err)
	}
	file := put(f, s, app)
	valid, _ := os.ReadFile(file)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add([]byte("sbe1:"))
	f.Add([]byte("not an envelope"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(file, data, 0o600); err != nil {
			t.Fatal(err)
		}
		e, ok, err := s.Get(t.Context(), app)
		switch {
		case ok && err == nil:
			if e.Response == nil {
				t.Fatal("an entry without a response was returned")
			}
		case err != nil && !errors.Is(err, vaultcache.ErrRefused):
			t.Fatalf("an unreadable entry is not refused but %v", err)
		case !ok && err == nil:
			t.Fatal("a present file was reported missing")
		}
	})
}
