package examples_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every action a workflow, the Action or a CI example runs is pinned to a
// full commit SHA with the release named beside it (a moved tag cannot
// change what runs), no tool is installed @latest, and checkout leaves no
// token in .git for later steps. The one exception is the project's own
// Action in the example, which names a release that does not exist yet
// (docs/releases.md says to pin it by SHA once it does).
func TestWorkflowsPinEveryAction(t *testing.T) {
	files, _ := filepath.Glob("../.github/workflows/*.yml")
	ci, _ := filepath.Glob("ci/*.yml")
	files = append(append(files, ci...), "../action.yml")
	if len(files) < 5 {
		t.Fatalf("workflows found: %v", files)
	}
	uses := regexp.MustCompile(`(?m)^\s*(?:-\s+)?uses:\s*(\S+)(.*)$`)
	pinned := regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)
	comment := regexp.MustCompile(`^\s+#\s+v\d+\.\d+\.\d+`)
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range uses.FindAllStringSubmatch(string(b), -1) {
			ref := m[1]
			if strings.HasPrefix(m[0], "#") || strings.HasPrefix(strings.TrimSpace(m[0]), "#") {
				continue
			}
			seen++
			switch {
			case strings.HasPrefix(ref, "./"):
			case strings.HasPrefix(ref, "secrets-broker/secrets-broker@") && f == "ci/github-actions-action.yml":
			case !pinned.MatchString(ref):
				t.Errorf("%s: %q is not pinned to a commit SHA", f, ref)
			case !comment.MatchString(m[2]):
				t.Errorf("%s: %q does not name its release in a comment (# vX.Y.Z)", f, ref)
			}
			if strings.HasPrefix(ref, "actions/checkout@") {
				rest := string(b)[strings.Index(string(b), m[0])+len(m[0]):]
				if next := strings.Index(rest, "- "); next < 0 || !strings.Contains(rest[:next], "persist-credentials: false") {
					t.Errorf("%s: checkout keeps the job token in .git (persist-credentials: false is missing)", f)
				}
			}
		}
		if strings.Contains(string(b), "@latest") {
			t.Errorf("%s installs something @latest", f)
		}
	}
	if seen < 10 {
		t.Errorf("only %d uses: lines found; the pattern no longer matches the workflows", seen)
	}
}
