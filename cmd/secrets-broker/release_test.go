package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The release build in snapshot mode (scripts/release.sh, what the release
// workflow runs on a tag): every archive is built and its checksum
// verifies; a second build of the same commit is byte-identical; the SBOM
// parses and lists vault/api, the AWS SDK's KMS client and cobra at the
// versions go.mod resolves; each linux binary carries the stamped version,
// commit and date (the amd64 one prints them); and the image holds the
// very binary the archive holds.
func TestReleaseSnapshot(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is required to build the release image (scripts/test.sh installs it)")
	}
	root, _ := filepath.Abs("../..")
	a, b := t.TempDir(), t.TempDir()
	release := func(args ...string) string {
		cmd := exec.Command(filepath.Join(root, "scripts/release.sh"), args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("release.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	logA := release("--snapshot", "--image", a)
	release("--snapshot", b)
	sums, _ := filepath.Glob(filepath.Join(a, "*_SHA256SUMS"))
	if len(sums) != 1 {
		t.Fatalf("checksums files: %v", sums)
	}
	name := filepath.Base(sums[0])
	version := strings.TrimSuffix(strings.TrimPrefix(name, "secrets-broker_"), "_SHA256SUMS")
	sumA, _ := os.ReadFile(sums[0])
	sumB, _ := os.ReadFile(filepath.Join(b, name))
	if !bytes.Equal(sumA, sumB) {
		t.Errorf("two builds of one commit differ:\n%s\n%s", sumA, sumB)
	}
	check := exec.Command("sha256sum", "-c", name)
	check.Dir = a
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("checksums do not verify: %v\n%s", err, out)
	}
	for _, p := range []string{"linux_amd64.tar.gz", "linux_arm64.tar.gz", "darwin_arm64.tar.gz", "windows_amd64.zip", ".sbom.cdx.json"} {
		if !strings.Contains(string(sumA), "secrets-broker_"+version+"_"+p) && !strings.Contains(string(sumA), "secrets-broker_"+version+p) {
			t.Errorf("no %s in the checksums:\n%s", p, sumA)
		}
	}

	// The SBOM names the required libraries at go.mod's versions.
	var sbom struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Name, Version, Purl string
		} `json:"components"`
	}
	data, _ := os.ReadFile(filepath.Join(a, "secrets-broker_"+version+".sbom.cdx.json"))
	if err := json.Unmarshal(data, &sbom); err != nil || sbom.BOMFormat != "CycloneDX" {
		t.Fatalf("SBOM does not parse as CycloneDX: %v", err)
	}
	for _, mod := range []string{"github.com/hashicorp/vault/api", "github.com/aws/aws-sdk-go-v2/service/kms", "github.com/spf13/cobra"} {
		want, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", mod).Output()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range sbom.Components {
			if c.Name == mod && c.Version == strings.TrimSpace(string(want)) {
				found = true
			}
		}
		if !found {
			t.Errorf("the SBOM lacks %s %s", mod, want)
		}
	}

	// The stamped version, commit and date.
	commit, _ := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	amd64 := filepath.Join(a, "build", "linux_amd64", "secrets-broker")
	out, err := exec.Command(amd64, "version").Output()
	if err != nil || !strings.Contains(string(out), version) || !strings.Contains(string(out), strings.TrimSpace(string(commit))) || strings.Contains(string(out), "built unknown") {
		t.Errorf("version of the linux/amd64 binary: %v %q", err, out)
	}
	arm64, _ := os.ReadFile(filepath.Join(a, "build", "linux_arm64", "secrets-broker"))
	if !bytes.Contains(arm64, []byte(version)) || !bytes.Contains(arm64, bytes.TrimSpace(commit)) {
		t.Error("the linux/arm64 binary does not carry the stamped version and commit")
	}

	// The image holds the archive's binary.
	tag := strings.ReplaceAll(version, "+", "-") + "-amd64"
	if !strings.Contains(logA, "localhost/secrets-broker:"+tag) {
		t.Fatalf("no image built:\n%s", logA)
	}
	image := "localhost/secrets-broker:" + tag
	t.Cleanup(func() { exec.Command("podman", "rmi", "-f", image, strings.TrimSuffix(image, "amd64")+"arm64").Run() })
	mnt, err := exec.Command("podman", "image", "mount", image).Output()
	if err != nil {
		t.Fatalf("podman image mount: %v", err)
	}
	defer exec.Command("podman", "image", "unmount", image).Run()
	inImage, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(mnt)), "secrets-broker"))
	if err != nil {
		t.Fatal(err)
	}
	archived, _ := os.ReadFile(amd64)
	if sha256.Sum256(inImage) != sha256.Sum256(archived) {
		t.Errorf("the image's binary (%s) is not the archive's", hex.EncodeToString(func() []byte { s := sha256.Sum256(inImage); return s[:] }()))
	}
	user, _ := exec.Command("podman", "image", "inspect", "--format", "{{.Config.User}}", image).Output()
	if strings.TrimSpace(string(user)) != "65532:65532" {
		t.Errorf("image user %q", user)
	}
}
