package vault_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/brokertest"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// Every login and re-login is logged at INFO with the method and the
// token's TTL, and counted with its result, as operators of Vault Agent
// expect to see.
func TestLoginsAreLoggedAndCounted(t *testing.T) {
	ctx := context.Background()
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=pw")
	v.Run(t, "auth", "enable", "approle")
	writePolicy(t, v, "reader", readPolicy)
	v.Run(t, "write", "auth/approle/role/web", "token_policies=reader", "token_ttl=2s", "token_max_ttl=2s")
	roleID := strings.TrimSpace(v.Run(t, "read", "-field=role_id", "auth/approle/role/web/role-id"))
	secretID := strings.TrimSpace(v.Run(t, "write", "-f", "-field=secret_id", "auth/approle/role/web/secret-id"))
	dir := t.TempDir()
	var mu sync.Mutex
	results := map[bool]int{}
	onLogin := func(err error) {
		mu.Lock()
		results[err == nil]++
		mu.Unlock()
	}
	logs := &brokertest.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	t.Setenv("VAULT_TOKEN", "")
	auth := vault.NewAppRoleAuth(vault.AppRoleAuth{RoleIDFile: writeFile(t, dir, "role-id", roleID), SecretIDFile: writeFile(t, dir, "secret-id", secretID)})
	c, err := vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: auth, Logger: log, OnLogin: onLogin})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(logs.String(), "logged in again") {
		if time.Now().After(deadline) {
			t.Fatalf("no re-login logged within 60 s of a 2 s token:\n%s", logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := strings.Split(logs.String(), "\n")[0]
	for _, want := range []string{"level=INFO", `msg="vault: logged in"`, "method=\"approle (mount approle)\"", "ttl=2s"} {
		if !strings.Contains(first, want) {
			t.Errorf("the first login's line %q lacks %q", first, want)
		}
	}
	if strings.Contains(logs.String(), secretID) {
		t.Fatal("the secret_id reached the log")
	}
	mu.Lock()
	ok := results[true]
	mu.Unlock()
	if ok < 2 {
		t.Errorf("%d successful logins counted, want at least 2", ok)
	}
	// A refused login is counted as an error.
	bad := vault.NewAppRoleAuth(vault.AppRoleAuth{RoleIDFile: writeFile(t, dir, "role-id2", roleID), SecretIDFile: writeFile(t, dir, "bad", "not-a-secret-id")})
	if _, err := vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: bad, OnLogin: onLogin}); err == nil {
		t.Fatal("a bad secret_id logged in")
	}
	mu.Lock()
	defer mu.Unlock()
	if results[false] != 1 {
		t.Errorf("%d failed logins counted, want 1", results[false])
	}
}

// An https:// address answered by a plain-HTTP server can never work: it
// is a configuration error at once (exit 2), not "unavailable" retried
// for the whole --timeout.
func TestHTTPSAddressAnsweredByPlainHTTPFailsFast(t *testing.T) {
	v := vaulttest.Start(t)
	t.Setenv("VAULT_TOKEN", v.Token)
	addr := strings.Replace(v.Addr, "http://", "https://", 1)
	_, err := vault.Connect(context.Background(), vault.Config{Address: addr})
	wantErr(t, err, fail.Usage, "answers plain HTTP, not HTTPS", "port")
}

// An expired or revoked token gets a sentence saying what it means and
// what to check, on one line, not Vault's raw multi-line error list.
func TestRevokedTokenIsExplained(t *testing.T) {
	v := vaulttest.Start(t)
	tok := strings.TrimSpace(v.Run(t, "token", "create", "-field=token", "-ttl=1h"))
	v.Run(t, "token", "revoke", tok)
	t.Setenv("VAULT_TOKEN", tok)
	_, err := vault.Connect(context.Background(), vault.Config{Address: v.Addr})
	wantErr(t, err, fail.Denied, "does not accept the token", "expired", "revoked", "VAULT_TOKEN", "token_file")
	if msg := err.Error(); strings.ContainsAny(msg, "\n\t") || strings.Contains(msg, "errors occurred") || strings.Contains(msg, tok) {
		t.Fatalf("the message is Vault's raw list or carries the token: %q", msg)
	}
}
