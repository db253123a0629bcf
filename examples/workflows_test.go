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
// token in .git for later steps. The project's own Action in the example
// too (its commit a placeholder until the first release).
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
		text := string(b)
		for _, at := range uses.FindAllStringSubmatchIndex(text, -1) {
			ref, trailer := text[at[2]:at[3]], text[at[4]:at[5]]
			seen++
			switch {
			case strings.HasPrefix(ref, "./"):
			case !pinned.MatchString(ref):
				t.Errorf("%s: %q is not pinned to a commit SHA", f, ref)
			case !comment.MatchString(trailer):
				t.Errorf("%s: %q does not name its release in a comment (# vX.Y.Z)", f, ref)
			}
			if strings.HasPrefix(ref, "actions/checkout@") {
				// This checkout's own step: up to the next step's "- ".
				rest := text[at[1]:]
				if next := strings.Index(rest, "- "); next < 0 || !strings.Contains(rest[:next], "persist-credentials: false") {
					t.Errorf("%s: checkout keeps the job token in .git (persist-credentials: false is missing)", f)
				}
			}
		}
		if strings.Contains(text, "@latest") {
			t.Errorf("%s installs something @latest", f)
		}
	}
	if seen < 10 {
		t.Errorf("only %d uses: lines found; the pattern no longer matches the workflows", seen)
	}
}

// Every place an example names the broker's image names the release image
// (ghcr.io/secrets-broker/secrets-broker) by version or digest: no
// placeholder registry, no :latest. The kustomize examples name it once,
// in kustomization.yaml's images, and the pods say `secrets-broker`.
func TestExamplesNameTheReleaseImage(t *testing.T) {
	const release = "ghcr.io/secrets-broker/secrets-broker"
	ref := regexp.MustCompile(`(?m)(?:image:|--image=)\s*"?([^\s"#]+)`)
	versioned := regexp.MustCompile(`^` + regexp.QuoteMeta(release) + `(:v\d+\.\d+\.\d+|@sha256:[0-9a-f]{64})$`)
	seen := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) || strings.Contains(path, "templates/") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "secrets-broker:latest") || strings.Contains(string(b), "example.com/secrets-broker") {
			t.Errorf("%s names a placeholder image for the broker", path)
		}
		for _, m := range ref.FindAllStringSubmatch(string(b), -1) {
			img := m[1]
			if !strings.Contains(img, "secrets-broker") {
				continue // the app's own image
			}
			seen++
			if img == "secrets-broker" && strings.HasPrefix(path, "kubernetes/") && !strings.HasPrefix(path, "kubernetes/injector/") {
				continue // mapped by kustomization.yaml, checked below
			}
			if !versioned.MatchString(img) {
				t.Errorf("%s: image %q is not the release image by version or digest", path, img)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := os.ReadFile("kubernetes/kustomization.yaml")
	if !strings.Contains(string(k), "newName: "+release+"\n") || !regexp.MustCompile(`newTag: v\d+\.\d+\.\d+|digest: sha256:`).Match(k) {
		t.Errorf("kubernetes/kustomization.yaml does not map secrets-broker to the release image:\n%s", k)
	}
	values, _ := os.ReadFile("helm/secrets-broker-injector/values.yaml")
	if !strings.Contains(string(values), "repository: "+release+"\n") {
		t.Error("the chart's image is not the release image")
	}
	if seen < 6 {
		t.Errorf("only %d broker image references found; the pattern no longer matches the examples", seen)
	}
}
