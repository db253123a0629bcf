package keys_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/keys"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

// The keys a user names are the only keys used: specs, $SECRETS_BROKER_KEYS
// when none are given, key files; the default local key only when nothing
// is named; a spec that is none says what the forms are, and a local key
// named by fingerprint must have been loaded.
func TestConfigResolvesOnlyTheNamedKeys(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(local.EnvKeyFile, filepath.Join(dir, "default.key"))
	t.Setenv(keys.Env, "")
	def, err := local.New(filepath.Join(dir, "default.key"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := local.New(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ids := func(c keys.Config, sealing bool) string {
		t.Helper()
		get := c.ForOpening
		if sealing {
			get = c.ForSealing
		}
		ws, err := get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, w := range ws {
			out = append(out, w.KeyID())
		}
		return strings.Join(out, " ")
	}

	if c := (keys.Config{}); c.Explicit() || ids(c, true) != def.KeyID() || ids(c, false) != def.KeyID() {
		t.Fatalf("nothing named: want the default local key %s", def.KeyID())
	}
	withFile := keys.Config{KeyFiles: []string{filepath.Join(dir, "other.key")}}
	if !withFile.Explicit() || ids(withFile, false) != other.KeyID() || ids(withFile, true) != other.KeyID() {
		t.Fatalf("a key file named: want only %s, got %q", other.KeyID(), ids(withFile, false))
	}
	byID := keys.Config{Specs: []string{other.KeyID()}, KeyFiles: withFile.KeyFiles}
	if ids(byID, true) != other.KeyID() {
		t.Fatalf("local:FINGERPRINT with its file: %q", ids(byID, true))
	}
	t.Setenv(keys.Env, " local , "+other.KeyID())
	env := keys.Config{KeyFiles: withFile.KeyFiles}
	if !env.Explicit() || ids(env, true) != def.KeyID()+" "+other.KeyID() {
		t.Fatalf("$%s: %q", keys.Env, ids(env, true))
	}
	t.Setenv(keys.Env, "")

	_, err = keys.Config{Specs: []string{"gcpkms:projects/x"}}.ForSealing(ctx)
	if err == nil || fail.KindOf(err) != fail.Usage || !strings.Contains(err.Error(), "awskms:ARN") {
		t.Fatalf("an unknown spec: %v", err)
	}
	_, err = keys.Config{Specs: []string{other.KeyID()}}.ForSealing(ctx)
	if err == nil || fail.KindOf(err) != fail.KeyUnavailable || !strings.Contains(err.Error(), "--key-file") {
		t.Fatalf("a local key by fingerprint without its file: %v", err)
	}
}
