package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/peakrss"
)

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Hostile inputs are refused before they are read whole or parsed into a
// tree: a 1 GiB envelope: file took 2 GiB and a 16 MiB secrets file 1.65 GB
// before. The whole binary is measured (VmHWM from /proc) and must stay
// under 4x the 16 MiB input limit. bench/peakrss prints the full table.
func TestHostileInputsStayBounded(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "secrets-broker")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	huge := filepath.Join(dir, "huge.sbe")
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(1 << 30) // sparse
	f.Close()
	os.WriteFile(filepath.Join(dir, "broker.yaml"), []byte("output_root: out\nsecrets:\n  db: envelope:huge.sbe\noutputs:\n  - path: db.txt\n    secret: db\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "bomb.yaml"), bytes.Repeat([]byte("a: b\n"), 16<<20/5), 0o600)
	os.WriteFile(filepath.Join(dir, "small-bomb.yaml"), bytes.Repeat([]byte("a: b\n"), 1<<20/5), 0o600)
	// HCL, which any config that is not YAML is tried as: 64 KiB nested
	// 32,000 deep took 2.4 GB on c5e921c, 1 MiB passed 22 GB.
	nested := func(n int) []byte { return []byte("a = " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n") }
	os.WriteFile(filepath.Join(dir, "nested-64k.hcl"), nested(32<<10), 0o600)
	os.WriteFile(filepath.Join(dir, "nested-1m.hcl"), nested((1<<20-64)/2), 0o600)
	// JSON, which hcl reads for a file starting with "{": 64 KiB nested
	// took 673 MB before the review's fix (hcl's scanner stopped at ":").
	jsonNested := func(n int) []byte {
		return []byte(`{"template": ` + strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) + "}")
	}
	os.WriteFile(filepath.Join(dir, "nested-64k.json"), jsonNested(64<<10/6), 0o600)
	os.WriteFile(filepath.Join(dir, "nested-1m.json"), jsonNested((1<<20-64)/6), 0o600)
	// Block labels nest too: `a a a ... {}` is one brace and 4,000 levels
	// (found by the second review: 23 KB cost 182 MB).
	os.WriteFile(filepath.Join(dir, "labels.hcl"), []byte(strings.Repeat("a ", 4000)+"{}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "flat-1m.hcl"), []byte("template { contents = ["+strings.Repeat("1,", (1<<20-64)/2)+"1] }\n"), 0o600)
	const limit = 4 * 16 << 20
	for _, c := range []struct {
		name  string
		stdin io.Reader
		args  []string
		want  string
	}{
		{"1 GiB envelope: file", nil, []string{"run", "--once", "-c", "broker.yaml"}, "larger than"},
		{"1 GiB on stdin", io.LimitReader(zeros{}, 1<<30), []string{"decrypt"}, "larger than"},
		{"16 MiB YAML bomb", nil, []string{"inspect", "--in", "bomb.yaml"}, "not in the layout"},
		{"1 MiB YAML bomb", nil, []string{"inspect", "--in", "small-bomb.yaml"}, "too many YAML elements"},
		{"64 KiB nested HCL, validate", nil, []string{"validate", "-c", "nested-64k.hcl"}, "deeper than 32 levels"},
		{"1 MiB nested HCL, run", nil, []string{"run", "--once", "-c", "nested-1m.hcl"}, "deeper than 32 levels"},
		{"1 MiB nested HCL, migrate", nil, []string{"migrate", "vault-agent", "nested-1m.hcl"}, "deeper than 32 levels"},
		{"64 KiB nested JSON, migrate", nil, []string{"migrate", "consul-template", "nested-64k.json"}, "deeper than 32 levels"},
		{"1 MiB nested JSON, migrate", nil, []string{"migrate", "vault-agent", "nested-1m.json"}, "deeper than 32 levels"},
		{"4,000 block labels, migrate", nil, []string{"migrate", "consul-template", "labels.hcl"}, "deeper than 32 levels"},
		{"1 MiB flat HCL, migrate", nil, []string{"migrate", "consul-template", "flat-1m.hcl"}, "more than 4096 HCL tokens"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(bin, c.args...)
			cmd.Dir, cmd.Stdin, cmd.Stdout = dir, c.stdin, io.Discard
			cmd.Env = append(os.Environ(), "SECRETS_BROKER_LOCAL_KEY="+filepath.Join(dir, "none.key"), "SECRETS_BROKER_KEYS=")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			peak, err := peakrss.Run(cmd)
			if err == nil || !strings.Contains(stderr.String(), c.want) {
				t.Fatalf("want a refusal mentioning %q; got %v: %s", c.want, err, stderr.String())
			}
			if peak == 0 || peak > limit {
				t.Fatalf("peak RSS %d MiB, want at most %d MiB", peak>>20, limit>>20)
			}
			t.Logf("peak RSS %.1f MiB", float64(peak)/(1<<20))
		})
	}
}
