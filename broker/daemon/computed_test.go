package daemon_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
	"github.com/secrets-broker/secrets-broker/internal/redact"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
)

// A Vault path computed while rendering may be built from a secret's value
// (here a KV entry names the entry to read). Errors, logs, metrics, /readyz
// and the restart cache's entries (whose context a KMS key would send to
// AWS, where CloudTrail logs it) never show such a path, in any form; they
// name it "computed" instead, and the literal paths of the config still
// appear as they are.
func TestComputedPathsNeverShowTheSecretTheyAreBuiltFrom(t *testing.T) {
	v := vaulttest.Start(t)
	const found, missing = "Fq7tQ2-found-name", "Zx9pL4-missing-name"
	v.Run(t, "kv", "put", "secret/pointer/found", "target="+found)
	v.Run(t, "kv", "put", "secret/pointer/missing", "target="+missing)
	v.Run(t, "kv", "put", "secret/"+found, "v=ok")
	dir := t.TempDir()
	brokertest.LocalKey(t, dir)
	for _, name := range []string{"found", "missing"} {
		tmpl := `{{ with secret (printf "secret/data/%s" (secret "secret/data/pointer/` + name + `").Data.data.target) }}{{ .Data.data.v }}{{ end }}`
		os.WriteFile(filepath.Join(dir, name+".tmpl"), []byte(tmpl), 0o600)
	}
	addr := freeAddr(t)
	cfgPath := tokenConfig(t, v, dir, `cache: {path: cache, key: local, max_stale: 1h}
refresh:
  static_interval: 300ms
  metrics_address: `+addr+`
outputs:
  - path: found.txt
    template: found.tmpl
  - path: missing.txt
    template: missing.tmpl
`)
	forms := append(redact.Forms(found), redact.Forms(missing)...)
	leaks := func(where, text string) {
		t.Helper()
		for _, f := range forms {
			if strings.Contains(text, f) {
				t.Errorf("%s shows a computed path (%q):\n%s", where, f, text)
				return
			}
		}
	}

	// run --once.
	cfg, err := config.Source{Path: cfgPath}.Load()
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(cfg)
	var onceLog brokertest.Buffer
	b.SetLogger(slog.New(slog.NewTextHandler(&onceLog, nil)))
	rep, err := b.RenderOnce(context.Background(), broker.RenderOptions{})
	b.Close()
	if err == nil {
		t.Fatal("run --once rendered an output whose computed path does not exist")
	}
	leaks("run --once's error", err.Error())
	if !strings.Contains(err.Error(), "computed") {
		t.Errorf("run --once's error does not say the failing path was computed: %v", err)
	}
	for _, r := range rep.Results {
		if r.Err != nil {
			leaks("the error of output "+r.Path, r.Err.Error())
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "out", "found.txt")); string(got) != "ok" {
		t.Fatalf("found.txt = %q, want the value read at the computed path", got)
	}
	leaks("run --once's log", onceLog.String())

	// The daemon: it keeps the computed path fresh and keeps retrying the
	// missing one, logging each attempt.
	d := startDaemon(t, cfgPath)
	d.eventuallyLogged(t, 20*time.Second, "a retry of the missing computed path logged", func() bool {
		return strings.Contains(d.logs.String(), "fetching a Vault secret failed")
	})
	// KV paths have no lease, so no expiry series: /metrics must show
	// none of them, computed or not.
	metrics := httpBody(t, "http://"+addr+"/metrics")
	leaks("/metrics", metrics)
	leaks("/readyz", httpBody(t, "http://"+addr+"/readyz"))
	leaks("the daemon's log", d.logs.String())
	entries, _ := filepath.Glob(filepath.Join(dir, "cache", "*"))
	if len(entries) < 3 {
		t.Fatalf("want cache entries for both pointers and the computed path, have %v", entries)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(e)
		if err != nil {
			t.Fatal(err)
		}
		leaks("restart-cache entry "+filepath.Base(e), string(raw))
	}
}

func httpBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
