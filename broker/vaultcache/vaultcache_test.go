package vaultcache_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/broker/vaultcache"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/redact"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

func entry() vaultcache.Entry {
	return vaultcache.Entry{Response: &api.Secret{LeaseID: "database/creds/app/abc", LeaseDuration: 3600, Renewable: true,
		Data: map[string]any{"username": "v-app-1", "password": "pw-1"}}, Fetched: time.Now().Round(0), Expires: time.Now().Add(time.Hour).Round(0)}
}

const here = "http://127.0.0.1:8200 "

var (
	app   = vaultcache.Request{Key: "database/creds/app"}
	appKV = vaultcache.Request{Key: "secret/data/app"}
)

// put stores entry() for key and returns the file it went to.
func put(t testing.TB, s *vaultcache.Store, key vaultcache.Request) string {
	t.Helper()
	before, _ := filepath.Glob(filepath.Join(s.Dir(), "*.sbe"))
	if err := s.Put(context.Background(), key, entry()); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(s.Dir(), "*.sbe"))
	for _, f := range after {
		if !slices.Contains(before, f) {
			return f
		}
	}
	t.Fatalf("Put %s made no new file", key.Key)
	return ""
}

func open(t *testing.T, key envelope.KeyWrapper, vault string) *vaultcache.Store {
	t.Helper()
	s, err := vaultcache.Open(t.TempDir(), []envelope.KeyWrapper{key}, vault, "approle:login-a")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func refused(t *testing.T, s *vaultcache.Store, key vaultcache.Request, why string) {
	t.Helper()
	_, ok, err := s.Get(t.Context(), key)
	if ok || !errors.Is(err, vaultcache.ErrRefused) {
		t.Fatalf("%s: ok %v, err %v; want refused", why, ok, err)
	}
	if strings.Contains(err.Error(), "pw-1") || strings.Contains(err.Error(), "v-app-1") {
		t.Fatalf("%s: the error shows a value: %v", why, err)
	}
}

func TestEntriesRoundTripAndStayBound(t *testing.T) {
	key := local.Generate()
	s := open(t, key, here)
	ctx := t.Context()
	if _, ok, err := s.Get(ctx, app); ok || err != nil {
		t.Fatalf("empty cache: ok %v, err %v", ok, err)
	}
	lease := put(t, s, app)
	got, ok, err := s.Get(ctx, app)
	if err != nil || !ok || got.Response.LeaseID != "database/creds/app/abc" || got.Response.Data["password"] != "pw-1" || got.Expires.IsZero() {
		t.Fatalf("round trip: ok %v err %v got %+v", ok, err, got)
	}
	info, _ := os.Stat(lease)
	if info.Mode().Perm() != 0o600 {
		t.Errorf("entry mode %v, want 0600", info.Mode().Perm())
	}
	if data, _ := os.ReadFile(lease); strings.Contains(string(data), "pw-1") {
		t.Fatal("the entry holds the value in the clear")
	}

	// Another request's entry copied over this one.
	kv := put(t, s, appKV)
	data, _ := os.ReadFile(kv)
	os.WriteFile(lease, data, 0o600)
	refused(t, s, app, "an entry copied over another request's")

	// The same request from another Vault, sealed by the same key.
	other := open(t, key, "https://vault.other:8200 ")
	data, _ = os.ReadFile(put(t, other, app))
	os.WriteFile(lease, data, 0o600)
	refused(t, s, app, "another Vault's entry")

	// Sealed by a key the cache is not configured with.
	data, _ = os.ReadFile(put(t, open(t, local.Generate(), here), app))
	os.WriteFile(lease, data, 0o600)
	refused(t, s, app, "an entry sealed by another key")

	// Truncated, and too large to read.
	if err := s.Put(ctx, app, entry()); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(lease)
	os.WriteFile(lease, data[:len(data)/2], 0o600)
	refused(t, s, app, "a truncated entry")
	os.WriteFile(lease, make([]byte, vaultcache.MaxEntryLen+1), 0o600)
	refused(t, s, app, "an oversized entry")

	if err := s.Delete(app); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, app); ok || err != nil {
		t.Fatalf("after Delete: ok %v err %v", ok, err)
	}
}

// A computed request's key (a path a template computed, which may be built
// from a secret) is sealed inside its entry, never in the clear: the
// context, which a KMS key sends to AWS, says only "computed". Get still
// refuses an entry that answers another request, and its errors do not
// name the path.
func TestComputedRequestsAreSealedInsideTheirEntry(t *testing.T) {
	s := open(t, local.Generate(), here)
	const frag = "Qm4vX8-from-a-secret"
	mine := vaultcache.Request{Key: "secret/data/" + frag, Computed: true}
	other := vaultcache.Request{Key: "secret/data/Wn2cR5-another", Computed: true}
	file := put(t, s, mine)
	data, _ := os.ReadFile(file)
	for _, f := range redact.Forms(frag) {
		if strings.Contains(string(data), f) {
			t.Fatalf("the entry shows the computed path (%q) in the clear:\n%s", f, data)
		}
	}
	if got, ok, err := s.Get(t.Context(), mine); err != nil || !ok || got.Response.Data["password"] != "pw-1" {
		t.Fatalf("round trip: ok %v err %v", ok, err)
	}
	noPath := func(err error) {
		t.Helper()
		if err != nil && strings.Contains(err.Error(), frag) {
			t.Fatalf("the error names the computed path: %v", err)
		}
	}
	// Another computed request's entry copied over this one: the same
	// context, another sealed key.
	os.WriteFile(file, mustRead(t, put(t, s, other)), 0o600)
	refused(t, s, mine, "another computed path's entry")
	_, _, err := s.Get(t.Context(), mine)
	noPath(err)
	// A literal request's entry over a computed one's, and back.
	lit := put(t, s, app)
	os.WriteFile(file, mustRead(t, lit), 0o600)
	refused(t, s, mine, "a literal request's entry over a computed one's")
	if err := s.Put(t.Context(), mine, entry()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(lit, mustRead(t, file), 0o600)
	refused(t, s, app, "a computed request's entry over a literal one's")
	// The same key asked for as a literal request does not get it.
	refused(t, s, vaultcache.Request{Key: mine.Key}, "a computed request's entry asked for as a literal one")
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An entry is bound to whom the login names (the role_id, a JWT's subject,
// the token), sealed inside it: the same cache directory and key opened for
// credentials that now name someone else refuse every entry, though the
// login's settings (and so the context) are unchanged. Fails on c5e921c,
// where only the settings were bound.
func TestEntriesAreBoundToTheLoginsPrincipal(t *testing.T) {
	key := local.Generate()
	dir := t.TempDir()
	a, err := vaultcache.Open(dir, []envelope.KeyWrapper{key}, here, "approle:role-a")
	if err != nil {
		t.Fatal(err)
	}
	file := put(t, a, app)
	if _, ok, err := a.Get(t.Context(), app); !ok || err != nil {
		t.Fatalf("same login: ok %v err %v", ok, err)
	}
	b, err := vaultcache.Open(dir, []envelope.KeyWrapper{key}, here, "approle:role-b")
	if err != nil {
		t.Fatal(err)
	}
	refused(t, b, app, "another role_id")
	data, _ := os.ReadFile(file)
	if strings.Contains(string(data), "role-a") {
		t.Fatal("the login's principal is in the entry's clear text")
	}
}

// The cache directory is the broker's alone. A directory the broker owns
// that others can enter is made 0700; one that belongs to someone else (a
// volume's mount point, 0777) gets a private subdirectory; a symbolic link
// is refused. Fails on c5e921c, which used any directory with its mode.
func TestCacheDirectoryIsPrivate(t *testing.T) {
	key := []envelope.KeyWrapper{local.Generate()}
	root := t.TempDir()

	wide := filepath.Join(root, "wide")
	os.Mkdir(wide, 0o777)
	os.Chmod(wide, 0o777)
	s, err := vaultcache.Open(wide, key, here, "l")
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := os.Stat(s.Dir()); s.Dir() != wide || info.Mode().Perm() != 0o700 {
		t.Fatalf("own 0777 directory: entries in %s, mode %s; want %s made 0700", s.Dir(), info.Mode().Perm(), wide)
	}

	link := filepath.Join(root, "link")
	os.Symlink(wide, link)
	for _, p := range []string{link, link + "/"} {
		if _, err := vaultcache.Open(p, key, here, "l"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("cache.path %s, a symbolic link: %v; want it refused", p, err)
		}
	}

	if os.Geteuid() != 0 {
		t.Log("not root: the directory owned by another uid is checked in CI, which runs as root")
		return
	}
	mount := filepath.Join(root, "mount")
	os.Mkdir(mount, 0o777)
	os.Chmod(mount, 0o777)
	os.Chown(mount, 65534, 65534)
	s, err = vaultcache.Open(mount, key, here, "l")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(s.Dir())
	if filepath.Dir(s.Dir()) != mount || info.Mode().Perm() != 0o700 {
		t.Fatalf("another uid's 0777 directory: entries in %s (%s); want a 0700 subdirectory of %s", s.Dir(), info.Mode().Perm(), mount)
	}
	file := put(t, s, app)
	if filepath.Dir(file) != s.Dir() {
		t.Fatalf("entry written to %s, outside %s", file, s.Dir())
	}
	// The other uid swaps the subdirectory, which it can rename in its own
	// 0777 directory, for a link to a directory of its own: the store
	// keeps writing into the directory it checked, never through the link.
	// Failed before the review's fix (the next Put landed in the link's
	// target).
	attacker := filepath.Join(root, "attacker")
	os.Mkdir(attacker, 0o777)
	moved := filepath.Join(mount, "moved-away")
	if err := os.Rename(s.Dir(), moved); err != nil {
		t.Fatal(err)
	}
	os.Symlink(attacker, s.Dir())
	if err := s.Put(t.Context(), appKV, entry()); err != nil {
		t.Fatal(err)
	}
	if names, _ := filepath.Glob(filepath.Join(attacker, "*")); len(names) > 0 {
		t.Fatalf("an entry was written through the swapped-in link: %v", names)
	}
	if names, _ := filepath.Glob(filepath.Join(moved, "*.sbe")); len(names) != 2 {
		t.Fatalf("the checked directory holds %v; want both entries", names)
	}
	if _, err := vaultcache.Open(mount, key, here, "l"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("reopening through the planted link: %v; want it refused", err)
	}
	os.Remove(s.Dir())
	os.Rename(moved, s.Dir())

	// The subdirectory replaced by one someone else owns: refused.
	os.RemoveAll(s.Dir())
	os.Mkdir(s.Dir(), 0o700)
	os.Chown(s.Dir(), 65534, 65534)
	if _, err := vaultcache.Open(mount, key, here, "l"); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Fatalf("a planted subdirectory: %v; want it refused", err)
	}
}
