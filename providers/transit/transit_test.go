package transit_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/transit"
)

func wantKind(t *testing.T, err error, kind fail.Kind, parts ...string) {
	t.Helper()
	if err == nil || fail.KindOf(err) != kind {
		t.Fatalf("want a %s error, got %v (class %s)", kind, err, fail.KindOf(err))
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}

// Against a real Vault dev server.
func TestTransitAgainstRealVault(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "secrets", "enable", "transit")
	v.Run(t, "write", "-f", "transit/keys/app")
	v.Run(t, "write", "-f", "transit/keys/other")
	root := v.Client(t)
	k, err := transit.New(root, "transit/app")
	if err != nil {
		t.Fatal(err)
	}
	if k.KeyID() != "transit:transit/app" {
		t.Fatalf("key id %s", k.KeyID())
	}
	b := envelope.Binding{Name: "db_password", Context: map[string]string{"env": "prod"}}
	e, err := envelope.Seal(ctx, []byte("hunter2"), b, k)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(e.Stanzas[0].WrappedKey), "vault:v1:") {
		t.Fatalf("wrapped key is not a Transit ciphertext")
	}
	got, err := e.Open(ctx, envelope.Expect{Name: "db_password"}, []envelope.KeyWrapper{k})
	if err != nil || string(got) != "hunter2" {
		t.Fatalf("open: %v", err)
	}

	// Vault checks the binding as associated data: a renamed header fails in Vault.
	renamed, _ := envelope.ParseText(e.String())
	renamed.Name = "db_passwore"
	_, err = renamed.Open(ctx, envelope.Expect{}, []envelope.KeyWrapper{k})
	wantKind(t, err, fail.Integrity, "transit:transit/app", "db_passwore")

	// Another Transit key cannot open the data key.
	other, _ := transit.New(root, "transit/other")
	_, err = other.UnwrapKey(ctx, e.Stanzas[0].WrappedKey, b)
	if err == nil {
		t.Fatal("another transit key opened the data key")
	}

	// Opening with a key that does not exist. (Sealing with one is allowed by
	// Vault itself when the policy grants "create" on transit/encrypt: Vault
	// then creates the key, as documented for the encrypt endpoint.)
	missing, _ := transit.New(root, "transit/missing")
	_, err = missing.UnwrapKey(ctx, e.Stanzas[0].WrappedKey, b)
	if err == nil || fail.KindOf(err) == fail.Internal {
		t.Fatalf("missing key: %v", err)
	}

	// A token without a policy for transit is denied.
	sec, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}})
	if err != nil {
		t.Fatal(err)
	}
	weak, _ := v.NewClient(sec.Auth.ClientToken)
	kw, _ := transit.New(weak, "transit/app")
	_, err = e.Open(ctx, envelope.Expect{}, []envelope.KeyWrapper{kw})
	wantKind(t, err, fail.KeyUnavailable, "denied", "transit/decrypt/app", "db_password")
	if strings.Contains(err.Error(), sec.Auth.ClientToken) || strings.Contains(err.Error(), v.Token) {
		t.Fatal("token in error")
	}

	// Vault gone: unavailable, retryable.
	v.Stop()
	_, err = e.Open(ctx, envelope.Expect{}, []envelope.KeyWrapper{k})
	wantKind(t, err, fail.Unavailable, "cannot reach Vault")
}

func TestParseID(t *testing.T) {
	for _, bad := range []string{"", "app", "/app", "transit/", "a/../b"} {
		if _, _, err := transit.ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	m, n, err := transit.ParseID("team/transit/app")
	if err != nil || m != "team/transit" || n != "app" {
		t.Fatalf("ParseID: %s %s %v", m, n, err)
	}
}
