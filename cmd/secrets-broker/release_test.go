package main_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The release build in snapshot mode (scripts/release.sh, what the release
// workflow runs on a tag): every archive is built and its checksum
// verifies; a second build of the same commit, under another umask, is
// byte-identical; each archive holds only its binary and documents, and
// that binary is a static executable for its platform (ELF, Mach-O or PE) stamped with the
// version, commit and date (the linux/amd64 one prints them); each
// archive's SBOM and each image's parse and list vault/api, the AWS SDK's
// KMS client and cobra at the versions go.mod resolves, for that platform;
// the image SBOM lists every file of the image by hash, and the SBOMs the
// Go standard library; and the image holds the very binary the archive
// holds, and no CA bundle of the build machine.
func TestReleaseSnapshot(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is required to build the release image (scripts/test.sh installs it)")
	}
	root, _ := filepath.Abs("../..")
	a, b := t.TempDir(), t.TempDir()
	release := func(umask string, args ...string) string {
		cmd := exec.Command("bash", append([]string{"-c", "umask " + umask + " && exec \"$0\" \"$@\"", filepath.Join(root, "scripts/release.sh")}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("release.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// The second build under another umask: modes are fixed, not inherited.
	logA := release("022", "--snapshot", "--image", a)
	release("077", "--snapshot", b)
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
	platforms := []struct{ os, arch, archive string }{
		{"linux", "amd64", "tar.gz"}, {"linux", "arm64", "tar.gz"}, {"darwin", "arm64", "tar.gz"}, {"windows", "amd64", "zip"},
	}
	prefix := "secrets-broker_" + version + "_"
	want := []string{prefix + "image_linux_amd64.sbom.cdx.json", prefix + "image_linux_arm64.sbom.cdx.json"}
	for _, p := range platforms {
		want = append(want, prefix+p.os+"_"+p.arch+"."+p.archive, prefix+p.os+"_"+p.arch+".sbom.cdx.json")
	}
	if listed := strings.Count(string(sumA), "\n"); listed != len(want) {
		t.Errorf("the checksums list %d files, want %d:\n%s", listed, len(want), sumA)
	}
	for _, f := range want {
		if !strings.Contains(string(sumA), "  "+f+"\n") {
			t.Errorf("no %s in the checksums:\n%s", f, sumA)
		}
	}

	head, _ := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	commit := strings.TrimSpace(string(head))
	ldflags, err := exec.Command(filepath.Join(root, "scripts/ldflags.sh")).Output()
	_, date, _ := strings.Cut(strings.TrimSpace(string(ldflags)), "main.date=")
	date, _, _ = strings.Cut(date, " ")
	if err != nil || len(date) < 10 {
		t.Fatalf("scripts/ldflags.sh: %v %q", err, ldflags)
	}
	binaries := map[string][]byte{}
	for _, p := range platforms {
		platform := p.os + "_" + p.arch
		// The binary as the archive holds it, not as the build left it.
		bin := unpack(t, filepath.Join(a, prefix+platform+"."+p.archive))
		binaries[platform] = bin
		checkBinary(t, platform, bin, version, commit, date)
		// Its SBOM names the required libraries at go.mod's versions, for its platform.
		checkSBOM(t, filepath.Join(a, prefix+platform+".sbom.cdx.json"), "goarch="+p.arch+"&goos="+p.os)
	}

	// The stamped version, commit and date, as the linux/amd64 binary prints them.
	amd64 := filepath.Join(t.TempDir(), "secrets-broker")
	if err := os.WriteFile(amd64, binaries["linux_amd64"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(amd64, "version").Output()
	if err != nil || !strings.Contains(string(out), version) || !strings.Contains(string(out), date) || !strings.Contains(string(out), commit) || strings.Contains(string(out), "built unknown") {
		t.Errorf("version of the linux/amd64 binary: %v %q", err, out)
	}

	// Each image's SBOM: the image, and every file in it by hash (the
	// archive's binary, /etc/passwd, /etc/group), the binary's modules and
	// the Go standard library it was built with.
	goVersion, _ := exec.Command("go", "env", "GOVERSION").Output()
	for _, arch := range []string{"amd64", "arm64"} {
		sbom := checkSBOM(t, filepath.Join(a, prefix+"image_linux_"+arch+".sbom.cdx.json"), "goarch="+arch+"&goos=linux")
		if c := sbom.Metadata.Component; c.Type != "container" || c.Name != "ghcr.io/secrets-broker/secrets-broker" || c.Version != version {
			t.Errorf("image SBOM (%s) describes %+v, not the image", arch, c)
		}
		hashes, files := map[string]string{}, 0
		for _, c := range sbom.Components {
			for _, h := range c.Hashes {
				if h.Alg == "SHA-256" {
					hashes[c.Name] = h.Content
				}
			}
			if c.Type == "file" {
				files++
			}
		}
		want := map[string]string{
			"github.com/secrets-broker/secrets-broker": sha(binaries["linux_"+arch]),
			"/etc/passwd": sha([]byte("nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")),
			"/etc/group":  sha([]byte("nonroot:x:65532:\n")),
		}
		for name, h := range want {
			if hashes[name] != h {
				t.Errorf("image SBOM (%s): %s has hash %q, not %q", arch, name, hashes[name], h)
			}
		}
		if files != 2 {
			t.Errorf("image SBOM (%s) lists %d files besides the binary; the image has /etc/passwd and /etc/group", arch, files)
		}
	}
	for _, f := range []string{prefix + "linux_amd64.sbom.cdx.json", prefix + "image_linux_arm64.sbom.cdx.json"} {
		data, _ := os.ReadFile(filepath.Join(a, f))
		if !strings.Contains(string(data), `"pkg:golang/std@`+strings.TrimSpace(string(goVersion))) || !strings.Contains(string(data), `"golang.org/x/crypto/x509roots/fallback"`) {
			t.Errorf("%s lacks the Go standard library at %s or the compiled-in roots", f, goVersion)
		}
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
	if sha(inImage) != sha(binaries["linux_amd64"]) {
		t.Errorf("the image's binary (%s) is not the archive's", sha(inImage))
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(mnt)), "etc/ssl")); !os.IsNotExist(err) {
		t.Errorf("the image holds the build machine's CA files (%v); the binary carries its roots", err)
	}
	user, _ := exec.Command("podman", "image", "inspect", "--format", "{{.Config.User}}", image).Output()
	if strings.TrimSpace(string(user)) != "65532:65532" {
		t.Errorf("image user %q", user)
	}
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// unpack returns the binary a release archive holds, and checks that it
// holds nothing but the binary and the documents.
func unpack(t *testing.T, archive string) []byte {
	t.Helper()
	files := map[string][]byte{}
	if strings.HasSuffix(archive, ".zip") {
		zr, err := zip.OpenReader(archive)
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		defer zr.Close()
		for _, f := range zr.File {
			r, err := f.Open()
			if err != nil {
				t.Fatalf("%s: %v", archive, err)
			}
			files[f.Name], err = io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatalf("%s: %v", archive, err)
			}
		}
	} else {
		f, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		gz, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s: %v", archive, err)
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", archive, err)
			}
			if h.Uid != 0 || h.Gid != 0 || h.Mode&0o022 != 0 {
				t.Errorf("%s: %s has owner %d:%d mode %o", archive, h.Name, h.Uid, h.Gid, h.Mode)
			}
			if files[h.Name], err = io.ReadAll(tr); err != nil {
				t.Fatalf("%s: %v", archive, err)
			}
		}
	}
	var bin []byte
	for name, data := range files {
		switch name {
		case "secrets-broker", "secrets-broker.exe":
			bin = data
		case "README.md", "LICENSE":
		default:
			t.Errorf("%s holds %s", archive, name)
		}
	}
	if bin == nil {
		t.Fatalf("%s holds no binary: %v", archive, files)
	}
	return bin
}

// checkBinary: the binary is an executable for its platform (ELF, Mach-O
// or PE, and its CPU), static, and stamped with the version and commit;
// read from its own build information, so darwin and windows binaries are
// checked too although they cannot run here.
func checkBinary(t *testing.T, platform string, bin []byte, version, commit, date string) {
	t.Helper()
	var machine string
	switch platform {
	case "linux_amd64", "linux_arm64":
		f, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: not ELF: %v", platform, err)
		}
		machine = map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}[f.Machine]
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: dynamically linked", platform)
			}
		}
	case "darwin_arm64":
		f, err := macho.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: not Mach-O: %v", platform, err)
		}
		machine = map[macho.Cpu]string{macho.CpuArm64: "arm64", macho.CpuAmd64: "amd64"}[f.Cpu]
	case "windows_amd64":
		f, err := pe.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("%s: not PE: %v", platform, err)
		}
		machine = map[uint16]string{pe.IMAGE_FILE_MACHINE_AMD64: "amd64", pe.IMAGE_FILE_MACHINE_ARM64: "arm64"}[f.Machine]
	}
	if !strings.HasSuffix(platform, "_"+machine) {
		t.Errorf("%s: the binary is for %q", platform, machine)
	}
	info, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("%s: no build information: %v", platform, err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	goos, goarch, _ := strings.Cut(platform, "_")
	if settings["GOOS"] != goos || settings["GOARCH"] != goarch || settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
		t.Errorf("%s: built with %v", platform, settings)
	}
	// -trimpath leaves -ldflags out of the build information: the stamped
	// strings themselves must be in the binary.
	for _, stamp := range []string{version, commit, date} {
		if !bytes.Contains(bin, []byte(stamp)) {
			t.Errorf("%s: %q is not stamped into the binary", platform, stamp)
		}
	}
}

type cdxSBOM struct {
	BOMFormat string `json:"bomFormat"`
	Metadata  struct {
		Component struct{ Type, Name, Version string } `json:"component"`
	} `json:"metadata"`
	Components []struct {
		Name, Version, Purl, Type string
		Hashes                    []struct {
			Alg     string `json:"alg"`
			Content string `json:"content"`
		} `json:"hashes"`
	} `json:"components"`
}

// checkSBOM: the file parses as CycloneDX, lists vault/api, the AWS SDK's
// KMS client and cobra at the versions go.mod resolves, and every Go
// module's purl names the platform.
func checkSBOM(t *testing.T, path, platform string) cdxSBOM {
	t.Helper()
	var sbom cdxSBOM
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &sbom); err != nil || sbom.BOMFormat != "CycloneDX" {
		t.Fatalf("%s does not parse as CycloneDX: %v", path, err)
	}
	modules := 0
	for _, c := range sbom.Components {
		if strings.HasPrefix(c.Purl, "pkg:golang/") {
			modules++
			if !strings.Contains(c.Purl, platform) {
				t.Errorf("%s: %s is not for %s", filepath.Base(path), c.Purl, platform)
			}
		}
	}
	for _, mod := range []string{"github.com/hashicorp/vault/api", "github.com/aws/aws-sdk-go-v2/service/kms", "github.com/spf13/cobra"} {
		want, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", mod).Output()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range sbom.Components {
			found = found || c.Name == mod && c.Version == strings.TrimSpace(string(want))
		}
		if !found {
			t.Errorf("%s lacks %s %s", filepath.Base(path), mod, want)
		}
	}
	if modules < 20 {
		t.Errorf("%s lists %d Go modules", filepath.Base(path), modules)
	}
	return sbom
}

// A release (not a snapshot) is built only from a clean checkout of the
// tag being released: not an untagged commit, not one of several tags
// git describe would pick between, not a tag that points elsewhere.
func TestReleaseRefusesTheWrongTag(t *testing.T) {
	root, _ := filepath.Abs("../..")
	repo := filepath.Join(t.TempDir(), "repo")
	git := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	if out, err := exec.Command("git", "clone", "-q", "--no-hardlinks", root, repo).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	// The scripts under test are the working tree's, committed in the clone.
	for _, f := range []string{"scripts/release.sh", "scripts/ldflags.sh"} {
		data, _ := os.ReadFile(filepath.Join(root, f))
		os.WriteFile(filepath.Join(repo, f), data, 0o755)
	}
	git("commit", "-q", "--allow-empty", "-am", "the scripts under test")
	release := func(refName string) string {
		cmd := exec.Command(filepath.Join(repo, "scripts/release.sh"), filepath.Join(t.TempDir(), "out"))
		cmd.Env = append(os.Environ(), "GITHUB_REF_NAME="+refName)
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 {
			t.Errorf("release.sh with GITHUB_REF_NAME=%q: exit %d, want 2\n%s", refName, code, out)
		}
		return string(out)
	}
	if out := release(""); !strings.Contains(out, "HEAD has 0 v* tags") {
		t.Errorf("untagged: %s", out)
	}
	git("tag", "-a", "-m", "one", "v1.0.0")
	git("tag", "v1.0.1")
	if out := release(""); !strings.Contains(out, "HEAD has 2 v* tags (v1.0.0 v1.0.1)") {
		t.Errorf("two tags: %s", out)
	}
	git("commit", "-q", "--allow-empty", "-m", "later")
	git("tag", "v1.0.2")
	if out := release("v1.0.1"); !strings.Contains(out, "the tag v1.0.1 does not point at HEAD") {
		t.Errorf("a tag elsewhere: %s", out)
	}
	os.WriteFile(filepath.Join(repo, "README.md"), []byte("changed"), 0o644)
	if out := release("v1.0.2"); !strings.Contains(out, "the tree has changes") {
		t.Errorf("a dirty tree: %s", out)
	}
}
