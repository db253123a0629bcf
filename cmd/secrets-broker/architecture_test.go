package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/architecture.md names every package of the module, so that a
// package added without a line there (its one job, its place) fails here.
func TestArchitectureNamesEveryPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	doc, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/secrets-broker/secrets-broker/"
	for _, p := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(p, module)
		if !ok {
			continue
		}
		if !strings.Contains(string(doc), "`"+rel+"`") {
			t.Errorf("docs/architecture.md has no line for package %s: say its one job there", rel)
		}
	}
}

// Limits that keep a package to one job (issue 19): no Go file above
// maxFileLines lines, and no package of the binary above maxPackageShare of
// the binary's own non-test code (its dependencies outside this module are
// not counted).
const (
	maxFileLines    = 600
	maxPackageShare = 0.15
)

// No Go file of the module, test or not, grows past maxFileLines, and no
// package the binary is built from holds more than maxPackageShare of the
// binary's own code: a package that outgrows its room is split, not fed.
func TestNoPackageOrFileOutgrowsItsRoom(t *testing.T) {
	const module = "github.com/secrets-broker/secrets-broker"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \" \"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := map[string]int{}
	total := 0
	for _, row := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(row, "\t", 3)
		if len(f) != 3 || (f[0] != module && !strings.HasPrefix(f[0], module+"/")) {
			continue
		}
		for _, name := range strings.Fields(f[2]) {
			n := countLines(t, filepath.Join(f[1], name))
			lines[f[0]] += n
			total += n
		}
	}
	if total == 0 {
		t.Fatal("go list named no package of this module: the count would prove nothing")
	}
	for p, n := range lines {
		if share := float64(n) / float64(total); share > maxPackageShare {
			t.Errorf("package %s holds %d of the binary's %d lines (%.0f%%, the limit is %.0f%%): split it by job (docs/architecture.md)", strings.TrimPrefix(p, module+"/"), n, total, 100*share, 100*maxPackageShare)
		}
	}
	err = filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && p != "../.." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			if n := countLines(t, p); n > maxFileLines {
				t.Errorf("%s has %d lines (the limit is %d): split it into files that each hold one part", strings.TrimPrefix(p, "../../"), n, maxFileLines)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// Every test docs/security.md names for a promise exists: a renamed or
// deleted test cannot leave a promise pointing at nothing.
func TestSecurityPromisesNameRealTests(t *testing.T) {
	doc, err := os.ReadFile("../../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	defined := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz)\w+)\(`)
	filepath.WalkDir("../..", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, "_test.go") {
			src, _ := os.ReadFile(path)
			for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
				defined[m[1]] = true
			}
		}
		return err
	})
	named := regexp.MustCompile("`((?:Test|Fuzz)[A-Z]\\w+)`").FindAllStringSubmatch(string(doc), -1)
	if len(named) < 50 {
		t.Fatalf("only %d tests named in docs/security.md; the pattern no longer matches", len(named))
	}
	for _, m := range named {
		if !defined[m[1]] {
			t.Errorf("docs/security.md names %s, which no test file defines", m[1])
		}
	}
}
