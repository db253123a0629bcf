package cli_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/pgtest"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
)

// restartFixture is a Vault with a database role against a real
// PostgreSQL, a KV secret, and an AppRole allowed to read both.
func restartFixture(t *testing.T) (v *vaulttest.Server, pg *pgtest.Server, dir string) {
	pg = pgtest.Start(t)
	v = vaulttest.Start(t)
	v.DatabaseRole(t, pg.Port, pg.User, pg.Password, "1h", "2h")
	v.Run(t, "kv", "put", "secret/app", "password=kv-secret-1")
	root := v.Client(t)
	if err := root.Sys().PutPolicy("app", `
path "database/creds/app" { capabilities = ["read"] }
path "secret/data/app" { capabilities = ["read"] }
path "pki/issue/web" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	v.Run(t, "auth", "enable", "approle")
	v.Run(t, "write", "auth/approle/role/app", "token_policies=app", "token_ttl=1h")
	dir = t.TempDir()
	roleID := strings.TrimSpace(v.Run(t, "read", "-field=role_id", "auth/approle/role/app/role-id"))
	secretID := strings.TrimSpace(v.Run(t, "write", "-f", "-field=secret_id", "auth/approle/role/app/secret-id"))
	os.WriteFile(filepath.Join(dir, "role-id"), []byte(roleID), 0o600)
	os.WriteFile(filepath.Join(dir, "secret-id"), []byte(secretID), 0o600)
	return v, pg, dir
}

func restartConfig(v *vaulttest.Server, maxStale string, secrets string) string {
	return fmt.Sprintf(`vault:
  address: %s
  auth:
    method: approle
    role_id_file: role-id
    secret_id_file: secret-id
cache:
  path: cache
  key: local
  max_stale: %s
output_root: out
secrets:
%soutputs:
  - path: app.env
    format: dotenv
`, v.Addr, maxStale, secrets)
}

const (
	dbSecrets = "  DB_USER: vault:database/creds/app#username\n  DB_PASS: vault:database/creds/app#password\n  PW: vault:secret/data/app#password\n"
	kvSecrets = "  PW: vault:secret/data/app#password\n"
)

// leases counts the database leases Vault holds.
func leases(t *testing.T, v *vaulttest.Server) int {
	t.Helper()
	s, err := v.Client(t).Logical().List("sys/leases/lookup/database/creds/app/")
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return 0
	}
	keys, _ := s.Data["keys"].([]any)
	return len(keys)
}

// envValue reads NAME="value" from a dotenv output.
func envValue(t *testing.T, path, name string) string {
	t.Helper()
	for _, line := range strings.Split(readFile(t, path), "\n") {
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	t.Fatalf("%s has no %s", path, name)
	return ""
}

// A restart does not mint new credentials: 20 restarts of run --once within
// the lease's TTL reuse the one database lease (Vault confirms it with
// sys/leases/lookup) and the one AppRole token; Vault Agent, run the same
// way beside it, mints one lease per run. A tampered entry is refused and
// fetched again; a lease Vault revoked is replaced.
func TestRestartCacheReusesLeases(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	v, pg, dir := restartFixture(t)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(restartConfig(v, "0s", dbSecrets)), 0o600)
	out := filepath.Join(dir, "out", "app.env")

	var user string
	for i := range 20 {
		r := run(t, "", "run", "--once", "--timeout", "30s", "-c", cfg)
		if r.code != 0 {
			t.Fatalf("run %d: exit %d: %s", i+1, r.code, r.stderr)
		}
		u := envValue(t, out, "DB_USER")
		if i == 0 {
			user = u
		} else if u != user {
			t.Fatalf("run %d rendered user %s, run 1 rendered %s: a new lease was minted", i+1, u, user)
		}
		if i > 0 && (!strings.Contains(r.stderr, "reusing a lease Vault confirms") || !strings.Contains(r.stderr, "reusing the token kept in the restart cache")) {
			t.Fatalf("run %d did not say it reused the lease and token: %s", i+1, r.stderr)
		}
		if strings.Contains(r.stderr, "cache entry refused") {
			t.Fatalf("run %d refused a cache entry it wrote itself (or a missing one): %s", i+1, r.stderr)
		}
		if strings.Contains(r.stderr, "kv-secret-1") {
			t.Fatal("a secret value reached the log")
		}
	}
	if n := leases(t, v); n != 1 {
		t.Fatalf("20 restarts left %d database leases; want 1", n)
	}
	if got, err := pg.Psql(user, envValue(t, out, "DB_PASS"), "postgres", "select current_user"); err != nil || got != user {
		t.Fatalf("the reused credentials do not log in: %v %s", err, got)
	}
	for _, f := range cacheFiles(t, dir) {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), "kv-secret-1") || strings.Contains(string(data), user) {
			t.Fatalf("cache file %s holds a value in the clear", f)
		}
	}
	t.Logf("secrets-broker: 20 restarts of run --once, %d database lease(s)", leases(t, v))

	// Vault Agent (the same binary as the dev server), exit_after_auth with
	// one template, 20 times, AppRole like the broker.
	t.Logf("Vault Agent: 20 runs with exit_after_auth, %d new database lease(s)", vaultAgentRuns(t, v, dir, 20))

	// Tampering: every cache entry gets one character changed. Each is
	// refused, the broker logs in and fetches afresh.
	for _, f := range cacheFiles(t, dir) {
		data, _ := os.ReadFile(f)
		i := len(data) / 2
		if data[i] == 'A' {
			data[i] = 'B'
		} else {
			data[i] = 'A'
		}
		os.WriteFile(f, data, 0o600)
	}
	before := leases(t, v)
	r := run(t, "", "run", "--once", "--timeout", "30s", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "cache entry refused") {
		t.Fatalf("tampered cache: exit %d, want a refused entry logged: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "reusing") {
		t.Fatalf("a tampered entry was reused: %s", r.stderr)
	}
	if n := leases(t, v); n != before+1 || envValue(t, out, "DB_USER") == user {
		t.Fatalf("after tampering: %d leases (want %d) and user %s", n, before+1, envValue(t, out, "DB_USER"))
	}

	// An entry moved over another one (the token's over the lease's) is
	// bound to another request: refused.
	files := cacheFiles(t, dir)
	if len(files) != 2 {
		t.Fatalf("want 2 cache entries (token, lease; no KV with max_stale 0), have %d", len(files))
	}
	data0, _ := os.ReadFile(files[0])
	os.WriteFile(files[1], data0, 0o600)
	r = run(t, "", "run", "--once", "--timeout", "30s", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "cache entry refused") {
		t.Fatalf("swapped entry: exit %d: %s", r.code, r.stderr)
	}

	// A lease Vault revoked is not reused: the broker mints a new one, and
	// the new credentials work.
	user = envValue(t, out, "DB_USER")
	v.Run(t, "lease", "revoke", "-prefix", "database/creds/app")
	r = run(t, "", "run", "--once", "--timeout", "30s", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "Vault does not confirm the kept lease") {
		t.Fatalf("revoked lease: exit %d: %s", r.code, r.stderr)
	}
	newUser := envValue(t, out, "DB_USER")
	if newUser == user {
		t.Fatal("a revoked lease was rendered")
	}
	if got, err := pg.Psql(newUser, envValue(t, out, "DB_PASS"), "postgres", "select current_user"); err != nil || got != newUser {
		t.Fatalf("the new credentials do not log in: %v %s", err, got)
	}
}

// With Vault stopped, a restart renders KV values from the cache at the
// first failed attempt (up to max_stale), never a lease; past max_stale it
// retries until --timeout as without a cache.
func TestRestartCacheRendersKVWhileVaultIsDown(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	v, _, dir := restartFixture(t)
	cfg := filepath.Join(dir, "broker.yaml")
	withLease := filepath.Join(dir, "lease.yaml")
	tooOld := filepath.Join(dir, "old.yaml")
	os.WriteFile(cfg, []byte(restartConfig(v, "1h", kvSecrets)), 0o600)
	os.WriteFile(withLease, []byte(restartConfig(v, "1h", dbSecrets)), 0o600)
	os.WriteFile(tooOld, []byte(restartConfig(v, "1ns", kvSecrets)), 0o600)
	mustRun(t, "", "run", "--once", "-c", withLease)
	out := filepath.Join(dir, "out", "app.env")
	os.Remove(out)

	v.Stop()
	start := time.Now()
	r := run(t, "", "run", "--once", "--timeout", "2m", "-c", cfg)
	took := time.Since(start)
	if r.code != 0 || envValue(t, out, "PW") != "kv-secret-1" {
		t.Fatalf("Vault down, KV in the cache: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "rendering from the restart cache") || strings.Contains(r.stderr, "attempt=2") {
		t.Fatalf("want the cache used at the first failed attempt: %s", r.stderr)
	}
	t.Logf("run --once with Vault stopped rendered from the cache in %s", took.Round(time.Millisecond))

	// A lease is never rendered without Vault's word, even within max_stale.
	os.Remove(out)
	r = run(t, "", "run", "--once", "--timeout", "1s", "-c", withLease)
	if r.code == 0 || strings.Contains(r.stderr, "rendering from the restart cache") {
		t.Fatalf("a lease was rendered without Vault: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("an output was written without Vault's word on its lease")
	}
	// Older than max_stale: not rendered.
	r = run(t, "", "run", "--once", "--timeout", "1s", "-c", tooOld)
	if r.code == 0 || strings.Contains(r.stderr, "rendering from the restart cache") {
		t.Fatalf("a value older than max_stale was rendered: exit %d: %s", r.code, r.stderr)
	}
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "cache", "*.sbe"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cache entries under %s: %v", dir, err)
	}
	return files
}

// vaultAgentRuns runs Vault Agent n times (exit_after_auth, AppRole, one
// database template) and returns how many database leases it added.
func vaultAgentRuns(t *testing.T, v *vaulttest.Server, dir string, n int) int {
	t.Helper()
	adir := filepath.Join(dir, "agent")
	os.MkdirAll(adir, 0o700)
	os.WriteFile(filepath.Join(adir, "db.tmpl"), []byte(`{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}`), 0o600)
	hcl := fmt.Sprintf(`
vault { address = %q }
exit_after_auth = true
auto_auth {
  method "approle" {
    config = {
      role_id_file_path = %q
      secret_id_file_path = %q
      remove_secret_id_file_after_reading = false
    }
  }
}
template {
  source = %q
  destination = %q
}
`, v.Addr, filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id"), filepath.Join(adir, "db.tmpl"), filepath.Join(adir, "db.out"))
	os.WriteFile(filepath.Join(adir, "agent.hcl"), []byte(hcl), 0o600)
	before := leases(t, v)
	for i := range n {
		cmd := exec.Command(v.Bin, "agent", "-config", filepath.Join(adir, "agent.hcl"))
		cmd.Env = []string{"HOME=" + adir, "PATH=" + os.Getenv("PATH")}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("vault agent run %d: %v\n%s", i+1, err, out)
		}
		if b, err := os.ReadFile(filepath.Join(adir, "db.out")); err != nil || len(b) == 0 {
			t.Fatalf("vault agent run %d rendered nothing: %v", i+1, err)
		}
	}
	return leases(t, v) - before
}

// A PKI certificate in the cache is reused by a restart until its renewal
// point (refresh.certificate_renewal, default 2/3 of the validity): Vault
// backdates NotBefore by 30 s, so a 60 s certificate renews 56-65 s after
// it (reused now) at the default, and 4.5-9 s after it (already past) at
// 0.05.
func TestRestartCacheReusesCertificatesUntilTheirRenewalPoint(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	v, _, dir := restartFixture(t)
	v.Run(t, "secrets", "enable", "pki")
	v.Run(t, "write", "pki/root/generate/internal", "common_name=test-root", "ttl=24h")
	v.Run(t, "write", "pki/roles/web", "allowed_domains=example.com", "allow_subdomains=true", "max_ttl=1h")
	cert := "  CERT: vault:pki/issue/web?common_name=a.example.com&ttl=60s#certificate\n"
	withOutput := func(cfg string) string {
		return cfg + "  - path: cert.pem\n    format: raw\n    secret: CERT\n"
	}
	cfg := filepath.Join(dir, "broker.yaml")
	early := filepath.Join(dir, "early.yaml")
	os.WriteFile(cfg, []byte(withOutput(restartConfig(v, "0s", cert))), 0o600)
	os.WriteFile(early, []byte(withOutput(restartConfig(v, "0s", cert))+"refresh:\n  certificate_renewal: 0.05\n"), 0o600)
	pem := filepath.Join(dir, "out", "cert.pem")

	mustRun(t, "", "run", "--once", "-c", cfg)
	first := readFile(t, pem)
	r := run(t, "", "run", "--once", "-c", cfg)
	if r.code != 0 || readFile(t, pem) != first || !strings.Contains(r.stderr, "reusing a certificate before its renewal point") {
		t.Fatalf("restart before the renewal point: exit %d, same certificate %v: %s", r.code, readFile(t, pem) == first, r.stderr)
	}
	r = run(t, "", "run", "--once", "-c", early)
	if r.code != 0 || readFile(t, pem) == first || strings.Contains(r.stderr, "reusing a certificate") {
		t.Fatalf("restart past the renewal point: exit %d, same certificate %v: %s", r.code, readFile(t, pem) == first, r.stderr)
	}

	// Vault unreachable: a kept certificate and its key are rendered only
	// within max_stale of when they were issued, like a KV value. Fails on
	// c5e921c, which rendered it up to its renewal point whatever
	// max_stale said.
	fresh, stale := filepath.Join(dir, "fresh.yaml"), filepath.Join(dir, "stale.yaml")
	os.WriteFile(fresh, []byte(withOutput(restartConfig(v, "1h", cert))), 0o600)
	os.WriteFile(stale, []byte(withOutput(restartConfig(v, "1ns", cert))), 0o600)
	v.Stop()
	os.Remove(pem)
	r = run(t, "", "run", "--once", "--timeout", "1m", "-c", fresh)
	if r.code != 0 || !strings.Contains(r.stderr, "rendering from the restart cache") {
		t.Fatalf("Vault down, certificate within max_stale: exit %d: %s", r.code, r.stderr)
	}
	os.Remove(pem)
	r = run(t, "", "run", "--once", "--timeout", "1s", "-c", stale)
	if r.code == 0 || strings.Contains(r.stderr, "rendering from the restart cache") {
		t.Fatalf("Vault down, certificate older than max_stale: exit %d; want it not rendered: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(pem); err == nil {
		t.Fatal("a certificate older than max_stale was written with Vault unreachable")
	}
}

// With a Transit key the cache is opened through the broker's Vault login:
// leases are still reused, the token is not kept (opening the cache needs
// it), and entries are sealed by Vault.
func TestRestartCacheWithATransitKey(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	v, _, dir := restartFixture(t)
	v.Run(t, "secrets", "enable", "transit")
	v.Run(t, "write", "-f", "transit/keys/broker-cache")
	if err := v.Client(t).Sys().PutPolicy("app", `
path "database/creds/app" { capabilities = ["read"] }
path "secret/data/app" { capabilities = ["read"] }
path "transit/encrypt/broker-cache" { capabilities = ["update"] }
path "transit/decrypt/broker-cache" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(strings.Replace(restartConfig(v, "0s", dbSecrets), "key: local", "key: transit:transit/broker-cache", 1)), 0o600)
	out := filepath.Join(dir, "out", "app.env")
	mustRun(t, "", "run", "--once", "-c", cfg)
	user := envValue(t, out, "DB_USER")
	r := run(t, "", "run", "--once", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "reusing a lease Vault confirms") || strings.Contains(r.stderr, "reusing the token") {
		t.Fatalf("second run: exit %d: %s", r.code, r.stderr)
	}
	if envValue(t, out, "DB_USER") != user || leases(t, v) != 1 {
		t.Fatalf("a new lease was minted: %d leases", leases(t, v))
	}
	if n := len(cacheFiles(t, dir)); n != 1 {
		t.Fatalf("want 1 cache entry (the lease; no token, no KV with max_stale 0), have %d", n)
	}
}

// A kept lease Vault cannot be asked about (sys/leases/lookup answers 503
// once) is kept and the start retried, not dropped for a new lease.
func TestRestartCacheKeepsALeaseVaultCannotConfirmYet(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	v, _, dir := restartFixture(t)
	target, _ := url.Parse(v.Addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var failed atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/sys/leases/lookup" && failed.Add(1) == 1 {
			http.Error(w, `{"errors":["Vault is sealed"]}`, http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(strings.Replace(restartConfig(v, "0s", dbSecrets), v.Addr, front.URL, 1)), 0o600)
	mustRun(t, "", "run", "--once", "-c", cfg) // no cache yet: no lookup
	before := leases(t, v)
	failed.Store(0)
	r := run(t, "", "run", "--once", "--timeout", "1m", "-c", cfg)
	if r.code != 0 || !strings.Contains(r.stderr, "cannot ask Vault about the kept lease") || !strings.Contains(r.stderr, "reusing a lease Vault confirms") {
		t.Fatalf("exit %d; want a retried lookup, then the lease reused: %s", r.code, r.stderr)
	}
	if n := leases(t, v); n != before {
		t.Fatalf("%d leases after the run, %d before: a lease was minted while Vault could not be asked", n, before)
	}
}

// What an earlier login fetched is not reused by a login that may not
// fetch it now: after the role's policy loses the database path, a restart
// does not render the kept lease (Vault's sys/capabilities-self says no);
// and a config that logs in as another role does not open the entries at
// all (they are bound to the login).
func TestRestartCacheFollowsTheCurrentLogin(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	v, _, dir := restartFixture(t)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(restartConfig(v, "0s", dbSecrets)), 0o600)
	mustRun(t, "", "run", "--once", "-c", cfg)

	// Another role with the same policy: the entries are bound to the
	// first login, so they are refused and fetched again.
	v.Run(t, "write", "auth/approle/role/other", "token_policies=app", "token_ttl=1h")
	os.WriteFile(filepath.Join(dir, "role-id-2"), []byte(strings.TrimSpace(v.Run(t, "read", "-field=role_id", "auth/approle/role/other/role-id"))), 0o600)
	os.WriteFile(filepath.Join(dir, "secret-id-2"), []byte(strings.TrimSpace(v.Run(t, "write", "-f", "-field=secret_id", "auth/approle/role/other/secret-id"))), 0o600)
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte(strings.NewReplacer("role-id\n", "role-id-2\n", "secret-id\n", "secret-id-2\n").Replace(restartConfig(v, "0s", dbSecrets))), 0o600)
	before := leases(t, v)
	r := run(t, "", "run", "--once", "-c", other)
	if r.code != 0 || strings.Contains(r.stderr, "reusing") || leases(t, v) != before+1 {
		t.Fatalf("another login: exit %d, %d leases (want %d), want nothing reused: %s", r.code, leases(t, v), before+1, r.stderr)
	}

	// The first role's policy loses the database path.
	if err := v.Client(t).Sys().PutPolicy("app", `path "secret/data/app" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	r = run(t, "", "run", "--once", "--timeout", "5s", "-c", cfg)
	if r.code == 0 || strings.Contains(r.stderr, "reusing a lease") || !strings.Contains(r.stderr, "the current Vault login may not make this request") || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("after the policy change: exit %d; want the kept lease refused and the fetch denied: %s", r.code, r.stderr)
	}
}

// Credentials changed in place: the operator moves the workload to a
// narrower AppRole by writing the new role's role_id and secret_id into
// the same files, and restarts. The kept token (and every entry the old
// role fetched) is bound to the old role_id, so nothing is reused: the
// broker logs in as the new role, which may not read the database path.
// Fails on c5e921c: the old role's token was reused and its lease rendered.
func TestRestartCacheForgetsARoleChangedInPlace(t *testing.T) {
	setup(t)
	t.Setenv("VAULT_TOKEN", "")
	v, _, dir := restartFixture(t)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(restartConfig(v, "1h", dbSecrets)), 0o600)
	mustRun(t, "", "run", "--once", "-c", cfg)
	if r := run(t, "", "run", "--once", "-c", cfg); r.code != 0 || !strings.Contains(r.stderr, "reusing the token kept in the restart cache") {
		t.Fatalf("same role: exit %d, want the token reused: %s", r.code, r.stderr)
	}

	if err := v.Client(t).Sys().PutPolicy("narrow", `path "secret/data/app" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	v.Run(t, "write", "auth/approle/role/narrow", "token_policies=narrow", "token_ttl=1h")
	os.WriteFile(filepath.Join(dir, "role-id"), []byte(strings.TrimSpace(v.Run(t, "read", "-field=role_id", "auth/approle/role/narrow/role-id"))), 0o600)
	os.WriteFile(filepath.Join(dir, "secret-id"), []byte(strings.TrimSpace(v.Run(t, "write", "-f", "-field=secret_id", "auth/approle/role/narrow/secret-id"))), 0o600)
	out := filepath.Join(dir, "out", "app.env")
	before := readFile(t, out)
	r := run(t, "", "run", "--once", "--timeout", "5s", "-c", cfg)
	if r.code == 0 || strings.Contains(r.stderr, "reusing") {
		t.Fatalf("after the role change: exit %d; want nothing reused and the database path denied: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "kept for another Vault login") || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("after the role change: want the entries refused as another login's and the fetch denied: %s", r.stderr)
	}
	if readFile(t, out) != before {
		t.Fatal("the output changed although the new role may not read all it needs")
	}
	// The narrow role's own secrets render, from a fresh login.
	os.WriteFile(cfg, []byte(restartConfig(v, "1h", kvSecrets)), 0o600)
	if r := run(t, "", "run", "--once", "--timeout", "30s", "-c", cfg); r.code != 0 || envValue(t, out, "PW") != "kv-secret-1" {
		t.Fatalf("the narrow role's own secret: exit %d: %s", r.code, r.stderr)
	}
}
