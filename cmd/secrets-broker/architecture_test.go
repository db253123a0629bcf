package main

import (
	"os"
	"os/exec"
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
