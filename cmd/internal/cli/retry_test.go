package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/freeport"
)

// Every start that needs Vault retries with the one backoff policy, logs
// each failed attempt at warning level with the next delay, and gives up at
// --timeout: run --once and exec alike (exec had no --timeout).
func TestStartsRetryWithLoggedBackoffAndGiveUpAtTimeout(t *testing.T) {
	dir := setup(t)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("output_root: out\nsecrets:\n  PW: vault:secret/data/app#password\noutputs:\n  - path: app.env\n"), 0o600)
	port, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_ADDR", fmt.Sprintf("http://127.0.0.1:%d", port)) // nothing listens
	t.Setenv("VAULT_TOKEN", "s.test")
	retry := regexp.MustCompile(`level=WARN msg="connecting to Vault failed; retrying" attempt=1 retry_in=[0-9.]+m?s `)
	for _, args := range [][]string{
		{"exec", "--timeout", "1500ms", "--secret", "PW=vault:secret/data/app#password", "--", "/bin/echo", "ran"},
		{"run", "--once", "--timeout", "1500ms", "-c", cfg},
	} {
		r := run(t, "", args...)
		wantExit(t, r, 5, "cannot reach Vault")
		if !retry.MatchString(r.stderr) || !strings.Contains(r.stderr, "giving up: --timeout has passed") {
			t.Errorf("%s: want a warning per failed attempt with its retry delay and a last one giving up; stderr:\n%s", args[0], r.stderr)
		}
		if strings.Contains(r.stdout, "ran") {
			t.Errorf("%s: the command ran without its secrets", args[0])
		}
	}
	// --log-json: the same warnings as JSON lines, for run --once too.
	r := run(t, "", "run", "--once", "--log-json", "--timeout", "300ms", "-c", cfg)
	if !strings.Contains(r.stderr, `{"time":`) || !strings.Contains(r.stderr, `"level":"WARN","msg":"connecting to Vault failed; retrying"`) {
		t.Errorf("run --once --log-json: stderr:\n%s", r.stderr)
	}
}
