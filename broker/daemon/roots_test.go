package daemon_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/brokertest"
)

// An output with its own root is written beneath that root (and written
// back there when deleted); an output with its own wait is held after a
// change that the output without one is written for at once, and is
// written when its wait is over.
func TestOutputOwnRootAndWait(t *testing.T) {
	dir := brokertest.LocalDir(t)
	other := filepath.Join(dir, "elsewhere", "run")
	cfgPath := filepath.Join(dir, "broker.yaml")
	os.WriteFile(filepath.Join(dir, "token"), []byte("token-1"), 0o600)
	os.WriteFile(cfgPath, []byte("output_root: out\nsecrets:\n  token: file:token\noutputs:\n  - path: a.txt\n    secret: token\n"+
		"  - path: b.txt\n    root: elsewhere/run\n    secret: token\n    wait: {min: 3s, max: 30s}\n"), 0o600)
	d := startDaemon(t, cfgPath)
	a, b := filepath.Join(dir, "out", "a.txt"), filepath.Join(other, "b.txt")
	d.eventuallyLogged(t, 10*time.Second, "first render of both (no wait on the first)", func() bool { return fileIs(a, "token-1")() && fileIs(b, "token-1")() })
	before := d.passCount()

	os.WriteFile(filepath.Join(dir, "token"), []byte("token-2"), 0o600)
	d.eventuallyLogged(t, 10*time.Second, "a.txt written at once", fileIs(a, "token-2"))
	for i := before; i < d.passCount(); i++ {
		for _, r := range d.pass(i).Results {
			if r.Path == "a.txt" && r.Changed {
				for _, r2 := range d.pass(i).Results {
					if r2.Path == b && r2.Changed {
						t.Fatal("b.txt was written in the pass that wrote a.txt: its wait did not hold it")
					}
				}
			}
		}
	}
	d.eventuallyLogged(t, 20*time.Second, "b.txt written when its wait is over", fileIs(b, "token-2"))

	os.Remove(b)
	d.eventuallyLogged(t, 10*time.Second, "b.txt written back beneath its own root", fileIs(b, "token-2"))
	if _, err := os.Stat(filepath.Join(dir, "out", "b.txt")); err == nil {
		t.Fatal("b.txt was written beneath output_root")
	}
}
