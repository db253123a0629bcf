// Command peakrss measures secrets-broker's peak memory while it parses or
// refuses inputs of every kind at their largest sizes, next to the peak of
// a run that parses nothing (`version`) in the same run, and prints each
// peak as a ratio of the input's size. The target (issue 7): at most 4x the
// input and 256 MiB at the largest accepted size.
//
// Usage: go run ./bench/peakrss   (builds the binary itself)
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/secrets-broker/secrets-broker/internal/peakrss"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(1)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func run() error {
	dir, err := os.MkdirTemp("", "peakrss")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "secrets-broker")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/secrets-broker")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return err
	}
	env := append(os.Environ(), "SECRETS_BROKER_LOCAL_KEY="+filepath.Join(dir, "local.key"), "SECRETS_BROKER_KEYS=")
	sb := func(stdin io.Reader, args ...string) (int64, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir, cmd.Stdin, cmd.Stdout = env, dir, stdin, io.Discard
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		peak, err := peakrss.Run(cmd)
		return peak, stderr.String(), err
	}
	if _, out, err := sb(nil, "keygen"); err != nil {
		return fmt.Errorf("keygen: %v %s", err, out)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		return p
	}
	randText := func(n int) string {
		b := make([]byte, n*3/4)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)[:n]
	}
	var large, many bytes.Buffer
	for i := 0; i < 3; i++ {
		fmt.Fprintf(&large, "big%d: %s\n", i, randText([]int{4<<20 - 64, 4<<20 - 64, 1800 << 10}[i]))
	}
	for i := 0; i < 8000; i++ {
		fmt.Fprintf(&many, "s%05d: %s\n", i, randText(1130))
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"large.yaml", large.Bytes()}, {"many.yaml", many.Bytes()}} {
		write(f.name, f.data)
		for _, format := range []string{"yaml", "json"} {
			if _, out, err := sb(nil, "encrypt", "--file", f.name, "--format", format, "--out", f.name+".enc."+format); err != nil {
				return fmt.Errorf("encrypt %s: %v %s", f.name, err, out)
			}
		}
	}
	// The same file reformatted with quoted values (still read line by line).
	var quoted bytes.Buffer
	for _, ln := range bytes.SplitAfter(mustRead(filepath.Join(dir, "large.yaml.enc.yaml")), []byte("\n")) {
		if k, v, ok := bytes.Cut(bytes.TrimSuffix(ln, []byte("\n")), []byte(": sbe1:")); ok {
			ln = []byte(fmt.Sprintf("%s: 'sbe1:%s'\n", k, v))
		}
		quoted.Write(ln)
	}
	write("quoted.enc.yaml", quoted.Bytes())
	write("bomb.yaml", bytes.Repeat([]byte("a: b\n"), 16<<20/5))
	write("freeform-bomb.yaml", bytes.Repeat([]byte("a: b\n"), 1<<20/5))
	huge := filepath.Join(dir, "huge.sbe")
	if f, err := os.Create(huge); err == nil {
		f.Truncate(1 << 30) // sparse: 1 GiB that takes no disk
		f.Close()
	}
	nested := func(n int) []byte { return []byte("a = " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n") }
	write("nested-64k.hcl", nested(32<<10))
	write("nested-1m.hcl", nested((1<<20-64)/2))
	write("nested-1m.json", []byte(`{"template": `+strings.Repeat(`{"a":`, (1<<20-64)/6)+"1"+strings.Repeat("}", (1<<20-64)/6)+"}"))
	write("flat-1m.hcl", []byte("template { contents = ["+strings.Repeat("1,", (1<<20-64)/2)+"1] }\n"))
	// The most an HCL config may hold: just under MaxTokens tokens, with a
	// template text that fills the rest of the 1 MiB bound.
	var accepted bytes.Buffer
	accepted.WriteString("vault { address = \"https://127.0.0.1:8200\" }\n")
	for i := 0; accepted.Len() < 1<<20-256<<10 && i < 440; i++ {
		fmt.Fprintf(&accepted, "template {\n  destination = \"out/f%d\"\n  contents = \"x\"\n}\n", i)
	}
	fmt.Fprintf(&accepted, "template {\n  destination = \"out/big\"\n  contents = <<EOT\n%s\nEOT\n}\n", strings.Repeat("y", 1<<20-accepted.Len()-200))
	write("largest-accepted.hcl", accepted.Bytes())
	write("broker.yaml", []byte("output_root: out\nsecrets:\n  db: envelope:huge.sbe\noutputs:\n  - path: db.txt\n    secret: db\n"))

	base, _, _ := sb(nil, "version")
	fmt.Printf("baseline (version, parses nothing): peak %.1f MiB\n\n", mib(base))
	fmt.Printf("%-46s %10s %10s %8s %8s  %s\n", "input", "size MiB", "peak MiB", "peak/sz", "(-base)", "result")
	size := func(p string) int64 {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			return 0
		}
		return st.Size()
	}
	row := func(label string, sz int64, stdin io.Reader, args ...string) {
		peak, out, err := sb(stdin, args...)
		result := "ok"
		if err != nil {
			result = "refused: " + firstLine(out)
		}
		fmt.Printf("%-46s %10.1f %10.1f %8.2f %8.2f  %s\n", label, mib(sz), mib(peak), float64(peak)/float64(sz), float64(peak-base)/float64(sz), result)
	}
	for _, f := range []string{"large.yaml.enc.yaml", "large.yaml.enc.json", "many.yaml.enc.yaml", "many.yaml.enc.json", "quoted.enc.yaml"} {
		row("inspect "+f, size(f), nil, "inspect", "--in", f)
		row("decrypt "+f, size(f), nil, "decrypt", "--in", f)
	}
	row("inspect bomb.yaml (16 MiB of tiny nodes)", size("bomb.yaml"), nil, "inspect", "--in", "bomb.yaml")
	row("inspect freeform-bomb.yaml (1 MiB)", size("freeform-bomb.yaml"), nil, "inspect", "--in", "freeform-bomb.yaml")
	row("validate nested-64k.hcl (32K levels)", size("nested-64k.hcl"), nil, "validate", "-c", "nested-64k.hcl")
	row("migrate nested-1m.hcl (512K levels)", size("nested-1m.hcl"), nil, "migrate", "vault-agent", "nested-1m.hcl")
	row("migrate nested-1m.json (174K levels)", size("nested-1m.json"), nil, "migrate", "vault-agent", "nested-1m.json")
	row("migrate flat-1m.hcl (512K tokens)", size("flat-1m.hcl"), nil, "migrate", "consul-template", "flat-1m.hcl")
	row("migrate largest-accepted.hcl", size("largest-accepted.hcl"), nil, "migrate", "consul-template", "largest-accepted.hcl")
	row("run --once, envelope: file of 1 GiB (sparse)", 1<<30, nil, "run", "--once", "-c", "broker.yaml")
	row("decrypt, 1 GiB on standard input", 1<<30, io.LimitReader(zeros{}, 1<<30), "decrypt")
	return nil
}

func mustRead(p string) []byte {
	b, _ := os.ReadFile(p)
	return b
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func firstLine(s string) string {
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return s
}
