package daemon_test

import (
	"context"
	"fmt"
	"io"
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

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/metricstest"
	"github.com/secrets-broker/secrets-broker/internal/pgtest"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

// tokenConfig writes dir/broker.yaml: Vault v with its root token in
// dir/token, output_root dir/out, then body. VAULT_TOKEN is cleared so the
// token file is what logs in.
func tokenConfig(t *testing.T, v *vaulttest.Server, dir, body string) string {
	t.Helper()
	t.Setenv("VAULT_TOKEN", "")
	os.WriteFile(filepath.Join(dir, "token"), []byte(v.Token), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("vault:\n  address: %s\n  auth: {method: token, token_file: token}\noutput_root: out\n", v.Addr)+body), 0o600)
	return cfg
}

// KV secrets are re-read every static_interval: a change in Vault reaches
// the file and the app gets its signal; re-reads that change nothing write
// nothing and signal nothing.
func TestDaemonKVRefreshSignalsApp(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=one")
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "app.pid")
	hups := filepath.Join(dir, "hups")
	// USR1, not HUP: a shell cannot trap a signal that was ignored when it
	// started, and a suite run under nohup (or a CI runner that ignores
	// SIGHUP) passes HUP on ignored, so the app never saw it.
	app := exec.Command("/bin/sh", "-c", `echo $$ > "$1"; trap 'echo hup >> "$2"' USR1; while :; do sleep 0.05; done`, "sh", pidFile, hups)
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Process.Kill(); app.Wait() })
	eventually(t, 5*time.Second, "app pid file", func() bool { _, err := os.Stat(pidFile); return err == nil })

	d := startDaemon(t, tokenConfig(t, v, dir, `refresh:
  static_interval: 500ms
secrets:
  pw: vault:secret/data/app#password
outputs:
  - path: pw.txt
    secret: pw
    notify: {signal: USR1, pid_file: app.pid}
`))
	out := filepath.Join(dir, "out", "pw.txt")
	d.eventuallyLogged(t, 20*time.Second, "first render", fileIs(out, "one"))
	info, _ := os.Stat(out)
	time.Sleep(1500 * time.Millisecond) // three unchanged re-reads
	if after, _ := os.Stat(out); !after.ModTime().Equal(info.ModTime()) {
		t.Fatal("unchanged KV re-read rewrote the file")
	}
	if _, err := os.Stat(hups); err == nil {
		t.Fatal("app signalled although nothing changed")
	}
	v.Run(t, "kv", "put", "secret/app", "password=two")
	d.eventuallyLogged(t, 20*time.Second, "KV change rendered", fileIs(out, "two"))
	d.eventuallyLogged(t, 20*time.Second, "app signalled", func() bool {
		b, _ := os.ReadFile(hups)
		if n := strings.Count(string(b), "hup"); n > 1 {
			t.Fatalf("app signalled %d times for one change; daemon log:\n%s", n, d.logs.String())
		}
		return strings.Count(string(b), "hup") == 1
	})
}

// Dynamic credentials: one lease at start (no second set), rotated into the
// file before the old ones expire, and a reload keeps the lease it holds.
func TestDaemonDynamicCredentials(t *testing.T) {
	pg := pgtest.Start(t)
	v := vaulttest.Start(t)
	root := v.Client(t)
	v.DatabaseRole(t, pg.Port, pg.User, pg.Password, "4s", "10s")
	leases := func() int {
		s, err := root.Logical().List("sys/leases/lookup/database/creds/app")
		if err != nil || s == nil {
			return 0
		}
		keys, _ := s.Data["keys"].([]any)
		return len(keys)
	}
	v.Run(t, "kv", "put", "secret/app", "password=kv")
	dir := t.TempDir()
	addr := freeAddr(t)
	d := startDaemon(t, tokenConfig(t, v, dir, `refresh:
  metrics_address: `+addr+`
outputs:
  - path: db.conf
    template_text: '{{ with secret "database/creds/app" }}{{ .Data.username }} {{ .Data.password }}{{ end }}'
  - path: kv.txt
    template_text: '{{ with secret "secret/data/app" }}{{ .Data.data.password }}{{ end }}'
`))
	out := filepath.Join(dir, "out", "db.conf")
	creds := func() (string, string) {
		b, _ := os.ReadFile(out)
		f := strings.Fields(string(b))
		if len(f) != 2 {
			return "", ""
		}
		return f[0], f[1]
	}
	eventually(t, 15*time.Second, "first credentials", func() bool { u, _ := creds(); return u != "" })
	if n := leases(); n != 1 {
		t.Fatalf("%d leases after start, want 1 (no second set of credentials)", n)
	}
	first, _ := creds()
	// The lease's expiry is a series; the KV secret, with no lease, has
	// none (a 0 would fire every "expires within the hour" alert). The
	// login is counted.
	metrics := httpBody(t, "http://"+addr+"/metrics")
	if !strings.Contains(metrics, `secrets_broker_secret_expiry_timestamp_seconds{path="database/creds/app"} 1`) {
		t.Errorf("no expiry series (a Unix time) for the lease:\n%s", metrics)
	}
	if strings.Contains(metrics, `path="secret/data/app"`) {
		t.Errorf("a KV secret has an expiry series:\n%s", metrics)
	}
	if !strings.Contains(metrics, `secrets_broker_vault_logins_total{result="ok"} 1`) {
		t.Errorf("the login is not counted:\n%s", metrics)
	}
	// A reload keeps the credentials it holds.
	d.reload <- struct{}{}
	time.Sleep(time.Second)
	if u, _ := creds(); u != first || leases() != 1 {
		t.Fatalf("reload minted new credentials (%d leases)", leases())
	}
	// A noisy scraper floods the metrics listener the whole time: it gets
	// 429s, and the daemon still renews and rotates on time (below).
	flood, stopFlood := context.WithCancel(context.Background())
	defer stopFlood()
	var limited atomic.Int64
	for range 16 {
		go func() {
			for flood.Err() == nil {
				req, _ := http.NewRequestWithContext(flood, http.MethodGet, "http://"+addr+"/metrics", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					limited.Add(1)
				}
			}
		}()
	}
	// Over 25 s (max TTL 10 s) the file gets new credentials, and whatever
	// it holds logs in at every check.
	seen := map[string]bool{first: true}
	deadline := time.Now().Add(25 * time.Second)
	for time.Now().Before(deadline) {
		u, p := creds()
		if u == "" {
			t.Fatal("credentials file empty or partial")
		}
		if got, err := pg.Psql(u, p, "postgres", "select current_user"); err != nil || got != u {
			// Read the file, then log in: on a loaded machine the daemon
			// may replace the file (and Vault revoke the old set at its max
			// TTL) in between. That is not a failure; a file that still
			// holds credentials that do not log in is.
			if nu, _ := creds(); nu != u {
				continue
			}
			t.Fatalf("credentials in the file do not log in: %v %s", err, got)
		}
		seen[u] = true
		time.Sleep(500 * time.Millisecond)
	}
	if len(seen) < 2 {
		t.Fatal("credentials never rotated at max TTL")
	}
	if limited.Load() == 0 {
		t.Error("the flood of the metrics listener was never limited")
	}
	t.Logf("%d credential sets over 25 s", len(seen))
}

// A secret missing at start: its output waits (the others are written) and
// appears once the secret exists; the daemon keeps trying.
func TestDaemonSecretAppearsLater(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/present", "v=here")
	dir := t.TempDir()
	d := startDaemon(t, tokenConfig(t, v, dir, `secrets:
  present: vault:secret/data/present#v
  later: vault:secret/data/later#v
outputs:
  - path: present.txt
    secret: present
  - path: later.txt
    secret: later
`))
	eventually(t, 10*time.Second, "the available output", fileIs(filepath.Join(dir, "out", "present.txt"), "here"))
	if _, err := os.Stat(filepath.Join(dir, "out", "later.txt")); err == nil {
		t.Fatal("output written without its secret")
	}
	v.Run(t, "kv", "put", "secret/later", "v=arrived")
	eventually(t, 20*time.Second, "the late secret", fileIs(filepath.Join(dir, "out", "later.txt"), "arrived"))
	if !strings.Contains(d.logs.String(), "secret/data/later") {
		t.Fatal("the missing secret was not logged")
	}
}

// AppRole with remove_secret_id_file_after_reading: the file is gone after
// the first login, and a config reload still works because the daemon keeps
// its Vault client (and login) while the vault section is unchanged.
func TestDaemonReloadKeepsVaultLogin(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "v=one")
	root := v.Client(t)
	if _, err := root.Logical().Write("sys/policies/acl/reader", map[string]any{"policy": `path "secret/data/*" { capabilities = ["read"] }`}); err != nil {
		t.Fatal(err)
	}
	v.Run(t, "auth", "enable", "approle")
	v.Run(t, "write", "auth/approle/role/web", "token_policies=reader", "token_ttl=1h")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "role-id"), []byte(strings.TrimSpace(v.Run(t, "read", "-field=role_id", "auth/approle/role/web/role-id"))), 0o600)
	os.WriteFile(filepath.Join(dir, "secret-id"), []byte(strings.TrimSpace(v.Run(t, "write", "-f", "-field=secret_id", "auth/approle/role/web/secret-id"))), 0o600)
	base := fmt.Sprintf(`vault:
  address: %s
  auth:
    method: approle
    role_id_file: role-id
    secret_id_file: secret-id
    remove_secret_id_file_after_reading: true
output_root: out
secrets:
  v: vault:secret/data/app#v
outputs:
  - path: a.txt
    secret: v
`, v.Addr)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(base), 0o600)
	t.Setenv("VAULT_TOKEN", "")
	d := startDaemon(t, cfg)
	eventually(t, 10*time.Second, "first render", fileIs(filepath.Join(dir, "out", "a.txt"), "one"))
	if _, err := os.Stat(filepath.Join(dir, "secret-id")); !os.IsNotExist(err) {
		t.Fatal("secret_id file not removed after login")
	}
	os.WriteFile(cfg, []byte(base+"  - path: b.txt\n    secret: v\n"), 0o600)
	d.reload <- struct{}{}
	eventually(t, 10*time.Second, "output added by the reload", fileIs(filepath.Join(dir, "out", "b.txt"), "one"))
	if strings.Contains(d.logs.String(), "not reloaded") {
		t.Fatalf("reload failed:\n%s", d.logs.String())
	}
}

// A template whose Vault paths are computed (range over a LIST, printf) is
// kept fresh like a literal one: the paths found at start are watched, a
// change to one of them reaches the file, and a path that appears later (a
// new key in the listed folder) is found, fetched and watched too.
func TestDaemonKeepsComputedPathsFresh(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/services/web", "host=web-1")
	v.Run(t, "kv", "put", "secret/services/api", "host=api-1")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hosts.tmpl"), []byte(`{{ range secrets "secret/metadata/services/" }}{{ with secret (printf "secret/data/services/%s" .) }}{{ .Data.data.host }};{{ end }}{{ end }}`), 0o600)
	d := startDaemon(t, tokenConfig(t, v, dir, `refresh:
  static_interval: 300ms
outputs:
  - path: hosts
    template: hosts.tmpl
`))
	out := filepath.Join(dir, "out", "hosts")
	d.eventuallyLogged(t, 20*time.Second, "first render", fileIs(out, "api-1;web-1;"))
	v.Run(t, "kv", "put", "secret/services/web", "host=web-2")
	d.eventuallyLogged(t, 20*time.Second, "the change of a computed path rendered", fileIs(out, "api-1;web-2;"))
	// A new key in the listed folder: its path is found by the running
	// daemon, fetched, and kept fresh too.
	v.Run(t, "kv", "put", "secret/services/db", "host=db-1")
	d.eventuallyLogged(t, 20*time.Second, "a path found later rendered", fileIs(out, "api-1;db-1;web-2;"))
	v.Run(t, "kv", "put", "secret/services/db", "host=db-2")
	d.eventuallyLogged(t, 20*time.Second, "a path found later kept fresh", fileIs(out, "api-1;db-2;web-2;"))
}

// A sidecar re-reading KV does not re-seal an unchanged value into the
// restart cache at every read (each seal can be a KMS call); a change is
// written at once.
func TestDaemonKeepsUnchangedKVOutOfTheCache(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=one")
	dir := t.TempDir()
	t.Setenv("SECRETS_BROKER_LOCAL_KEY", filepath.Join(dir, "local.key"))
	if _, err := local.New(filepath.Join(dir, "local.key")); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	d := startDaemon(t, tokenConfig(t, v, dir, `cache: {path: cache, key: local, max_stale: 1h}
refresh:
  static_interval: 200ms
  metrics_address: `+addr+`
secrets:
  pw: vault:secret/data/app#password
outputs:
  - path: pw.txt
    secret: pw
`))
	out := filepath.Join(dir, "out", "pw.txt")
	d.eventuallyLogged(t, 20*time.Second, "first render", fileIs(out, "one"))
	entries, _ := filepath.Glob(filepath.Join(dir, "cache", "*.sbe"))
	if len(entries) != 1 {
		t.Fatalf("want one cache entry (the KV value), have %v", entries)
	}
	first, _ := os.Stat(entries[0])
	start := metricstest.VaultFetches(addr)
	d.eventuallyLogged(t, 20*time.Second, "three re-reads", func() bool { return metricstest.VaultFetches(addr) >= start+3 })
	if now, _ := os.Stat(entries[0]); !now.ModTime().Equal(first.ModTime()) {
		t.Fatal("an unchanged KV value was sealed into the cache again")
	}
	v.Run(t, "kv", "put", "secret/app", "password=two")
	d.eventuallyLogged(t, 20*time.Second, "the change rendered", fileIs(out, "two"))
	d.eventuallyLogged(t, 20*time.Second, "the change kept", func() bool {
		now, err := os.Stat(entries[0])
		return err == nil && !now.ModTime().Equal(first.ModTime())
	})
}

// A sidecar that starts while Vault cannot be reached renders its KV values
// from the restart cache (up to max_stale), says so on /readyz, keeps
// trying, and once Vault answers fetches everything afresh.
func TestDaemonStartsFromTheCacheWhileVaultIsDown(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=one")
	front, down := vaultFront(t, v)
	dir := t.TempDir()
	t.Setenv("SECRETS_BROKER_LOCAL_KEY", filepath.Join(dir, "local.key"))
	if _, err := local.New(filepath.Join(dir, "local.key")); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cfgPath := tokenConfig(t, v, dir, `cache: {path: cache, key: local, max_stale: 1h}
refresh:
  static_interval: 300ms
  metrics_address: `+addr+`
secrets:
  pw: vault:secret/data/app#password
outputs:
  - path: pw.txt
    secret: pw
`)
	throughFront(t, cfgPath, v, front)
	cfg, err := config.Source{Path: cfgPath}.Load()
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(cfg)
	if _, err := b.RenderOnce(t.Context(), broker.RenderOptions{}); err != nil { // fills the cache
		t.Fatal(err)
	}
	b.Close()
	out := filepath.Join(dir, "out", "pw.txt")
	os.Remove(out)

	down.Store(true)
	d := startDaemon(t, cfgPath)
	d.eventuallyLogged(t, 20*time.Second, "render from the cache", fileIs(out, "one"))
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "vault:secret/data/app") {
		t.Fatalf("/readyz while rendering from the cache: %d %s", resp.StatusCode, body)
	}
	d.eventuallyLogged(t, 20*time.Second, "a logged retry", func() bool {
		return strings.Contains(d.logs.String(), "Vault is still unreachable; outputs keep the values from the restart cache")
	})

	v.Run(t, "kv", "put", "secret/app", "password=two")
	down.Store(false)
	d.eventuallyLogged(t, time.Minute, "a fresh value once Vault answers", fileIs(out, "two"))
	d.eventuallyLogged(t, 20*time.Second, "ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// Every failed Vault re-read shows on /readyz, naming the request, the kind
// of failure and the outputs that use it (never the value), and clears once
// a re-read succeeds: the secret deleted (404), the policy losing the path
// (403), Vault unreachable (503 through a proxy). Fails on c5e921c, where
// /readyz stayed ready through all three.
func TestReadyzShowsEveryFailedVaultReread(t *testing.T) {
	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/app", "password=readyz-value-1")
	root := v.Client(t)
	policy := `path "secret/data/app" { capabilities = ["read"] }`
	if err := root.Sys().PutPolicy("reader", policy); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"reader"}, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	front, down := vaultFront(t, v)
	dir := t.TempDir()
	addr := freeAddr(t)
	cfgPath := tokenConfig(t, v, dir, `refresh:
  static_interval: 200ms
  metrics_address: `+addr+`
secrets:
  pw: vault:secret/data/app#password
outputs:
  - path: pw.txt
    secret: pw
  - path: app.env
    format: dotenv
    secrets: [pw]
`)
	throughFront(t, cfgPath, v, front)
	os.WriteFile(filepath.Join(dir, "token"), []byte(tok.Auth.ClientToken), 0o600)
	d := startDaemon(t, cfgPath)
	out := filepath.Join(dir, "out", "pw.txt")
	d.eventuallyLogged(t, 20*time.Second, "first render", fileIs(out, "readyz-value-1"))

	readyz := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	ready := func(what string) {
		t.Helper()
		d.eventuallyLogged(t, 20*time.Second, what, func() bool { code, _ := readyz(); return code == 200 })
	}
	unready := func(what, kind string) {
		t.Helper()
		var body string
		d.eventuallyLogged(t, 20*time.Second, what, func() bool {
			var code int
			code, body = readyz()
			return code == 503 && strings.Contains(body, "vault:secret/data/app ("+kind+"; outputs app.env, pw.txt)")
		})
		if strings.Contains(body, "readyz-value") {
			t.Fatalf("/readyz shows the value: %s", body)
		}
		if got, _ := os.ReadFile(out); string(got) != "readyz-value-1" {
			t.Fatalf("%s: the output lost its last good value: %q", what, got)
		}
	}
	ready("ready after the first render")

	v.Run(t, "kv", "metadata", "delete", "secret/app")
	unready("the secret deleted", "not-found")
	v.Run(t, "kv", "put", "secret/app", "password=readyz-value-1")
	ready("ready once the secret is back")

	if err := root.Sys().PutPolicy("reader", `path "secret/data/other" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	unready("the path denied", "denied")
	if err := root.Sys().PutPolicy("reader", policy); err != nil {
		t.Fatal(err)
	}
	ready("ready once the policy allows the path again")

	down.Store(true)
	unready("Vault unreachable", "unavailable")
	down.Store(false)
	ready("ready once Vault answers")
}

// vaultFront is a proxy in front of v that answers 503 ("Vault is sealed")
// while down is set: Vault unreachable on demand.
func vaultFront(t *testing.T, v *vaulttest.Server) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	target, _ := url.Parse(v.Addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	down := &atomic.Bool{}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, `{"errors":["Vault is sealed"]}`, http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front, down
}

// throughFront points the config at cfgPath at front instead of v.
func throughFront(t *testing.T, cfgPath string, v *vaulttest.Server, front *httptest.Server) {
	t.Helper()
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfgPath, []byte(strings.Replace(string(raw), v.Addr, front.URL, 1)), 0o600)
}
