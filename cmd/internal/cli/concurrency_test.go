package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Opening a KMS-sealed secrets file's entries makes the Decrypt calls
// concurrently, bounded (fetch opened them one by one). AWS KMS is
// unreachable here: this runs against kmsfake, the in-test KMS double.
// The test logs the wall time (not asserted).
func TestFetchOpensKMSEntriesConcurrently(t *testing.T) {
	dir := setup(t)
	srv := kmsEnv(t)
	arn := srv.CreateKey("us-east-1")
	var plain strings.Builder
	var secrets strings.Builder
	for i := range 100 {
		fmt.Fprintf(&plain, "s%03d: value-%03d\n", i, i)
		fmt.Fprintf(&secrets, "  s%03d: envelope:s.enc.yaml#s%03d\n", i, i)
	}
	os.WriteFile(filepath.Join(dir, "plain.yaml"), []byte(plain.String()), 0o600)
	mustRun(t, "", "encrypt", "--key", "awskms:"+arn, "--file", filepath.Join(dir, "plain.yaml"), "--out", filepath.Join(dir, "s.enc.yaml"))
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("keys: [\"awskms:"+arn+"\"]\nkey_cache: {ttl: 0s}\noutput_root: out\nsecrets:\n"+secrets.String()+"outputs:\n  - path: all.json\n    format: json\n"), 0o600)
	srv.SetLatency(10 * time.Millisecond)
	before := srv.Calls("Decrypt")
	start := time.Now()
	mustRun(t, "", "run", "--once", "-c", cfg)
	t.Logf("run --once, 100 KMS entries at 10 ms latency: %v", time.Since(start))
	if got := srv.Calls("Decrypt") - before; got != 101 {
		t.Fatalf("%d Decrypt calls, want 101 (100 entries and the manifest)", got)
	}
	if n := srv.MaxInFlight(); n < 4 || n > 16 {
		t.Fatalf("at most %d Decrypt calls were in flight; want them concurrent and bounded (4..16)", n)
	}
	out := readFile(t, filepath.Join(dir, "out", "all.json"))
	for i := range 100 {
		if !strings.Contains(out, fmt.Sprintf(`"s%03d": "value-%03d"`, i, i)) {
			t.Fatalf("entry s%03d missing or wrong in:\n%s", i, out)
		}
	}
}
