package broker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/vault"
	"github.com/secrets-broker/secrets-broker/templates"
)

func vaultBroker(t *testing.T, dir, addr string) *broker.Broker {
	t.Helper()
	p := filepath.Join(dir, "broker.yaml")
	os.WriteFile(p, []byte(fmt.Sprintf("vault:\n  address: %s\n  auth: {method: token, token_file: token}\noutput_root: out\nsecrets:\n  db: vault:secret/data/app#password\n  user: vault:secret/data/app#user\n", addr)), 0o600)
	cfg, err := config.Source{Path: p}.Load()
	if err != nil {
		t.Fatal(err)
	}
	return broker.New(cfg)
}

// What the daemon relies on when one config's broker follows another: the
// Vault login is lent once and survives the lender's Close, the borrower
// is connected without logging in, both name a computed path alike when
// they share a name key, and VaultKey changes when the Vault does.
func TestBrokersShareOneLoginAndOneNameKey(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw", "user=u")
	t.Setenv("VAULT_TOKEN", "")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "token"), []byte(v.Token), 0o600)
	ctx := context.Background()

	first := vaultBroker(t, dir, v.Addr)
	if first.Connected() {
		t.Fatal("a new broker says it is connected before it reached Vault")
	}
	if _, err := first.VaultClient(ctx); err != nil {
		t.Fatal(err)
	}
	c := first.LendVault()
	if c == nil || first.LendVault() != nil {
		t.Fatal("LendVault must hand over the broker's own client once")
	}
	first.Close()
	second := vaultBroker(t, dir, v.Addr)
	defer second.Close()
	second.UseVault(c)
	if !second.Connected() {
		t.Fatal("a broker given a client says it is not connected")
	}
	if second.VaultKey() != first.VaultKey() {
		t.Errorf("the same Vault and login have two keys: %q, %q", first.VaultKey(), second.VaultKey())
	}
	if other := vaultBroker(t, t.TempDir(), "http://127.0.0.1:1"); other.VaultKey() == first.VaultKey() {
		t.Error("another Vault address has the same VaultKey")
	}
	res, err := second.FetchUntil(ctx, []string{"db"}, nil, nil, 0, false)
	if err != nil {
		t.Fatalf("the lent client does not work after its lender closed: %v", err)
	}
	if res.Values["db"] != "pw" {
		t.Fatalf("db = %q", res.Values["db"])
	}

	ref, _ := vault.ParseRef("secret/data/app")
	ref.Computed = true
	var key [32]byte
	key[0] = 7
	first.SetNameKey(key)
	second.SetNameKey(key)
	if a, b := first.ShownRequest(ref), second.ShownRequest(ref); a != b {
		t.Errorf("one name key names a computed path twice: %q, %q", a, b)
	}
	key[0] = 8
	before := second.ShownRequest(ref)
	second.SetNameKey(key)
	if second.ShownRequest(ref) == before {
		t.Error("another name key gives a computed path the same name")
	}
}

// The request index says which declared secrets and template calls read
// each distinct request, so that one response updates all of them, and
// Apply does; a Clone is not changed by it.
func TestOneResponseReachesEveryUserOfItsRequest(t *testing.T) {
	b := vaultBroker(t, t.TempDir(), "http://127.0.0.1:1")
	call := templates.VaultCall{Path: "secret/data/app"}
	idx := b.IndexRequests([]string{"db", "user"}, []templates.VaultCall{call})
	refs := idx.Refs()
	if len(refs) != 1 {
		t.Fatalf("want one request for two fields and a call of one path, have %v", refs)
	}
	key := refs[0].RequestKey()
	names, calls, ok := idx.Users(key)
	slices.Sort(names)
	if !ok || !slices.Equal(names, []string{"db", "user"}) || !slices.Equal(calls, []string{call.Key()}) {
		t.Fatalf("Users(%q) = %v %v %v", key, names, calls, ok)
	}
	if _, _, ok := idx.Users("secret/data/other"); ok {
		t.Error("a request nobody made has users")
	}
	res, err := b.FetchUntil(context.Background(), nil, nil, nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	old := res.Clone()
	data := map[string]any{"password": "new", "user": "u2"}
	s := &vault.Secret{Data: data, KVv2: true, Raw: &api.Secret{Data: map[string]any{"data": data}}}
	if err := b.Apply(res, idx, key, s); err != nil {
		t.Fatal(err)
	}
	if res.Values["db"] != "new" || res.Values["user"] != "u2" || res.Vault[call.Key()] == nil {
		t.Fatalf("Apply did not reach every user: %v, call %v", res.Values, res.Vault[call.Key()])
	}
	if len(old.Values) != 0 || len(old.Vault) != 0 {
		t.Errorf("Apply changed a clone taken before it: %v", old.Values)
	}
}
