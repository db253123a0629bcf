package broker

import (
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/config"
)

// A Vault identity token's role is part of its restart-cache key: another
// role never reuses the token of the first.
func TestVaultIdentityRoleIsInTheCacheKey(t *testing.T) {
	key := func(role string) string {
		b := &Broker{cfg: &config.Config{Tokens: map[string]*config.Token{"id": {VaultIdentity: role}}}}
		return b.tokenRequest("id", nil).Key
	}
	if a, b := key("app"), key("admin"); a == b {
		t.Errorf("roles app and admin share the cache key %s", a)
	}
}
