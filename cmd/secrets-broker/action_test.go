package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
)

// The GitHub Action's script (action.yml runs scripts/action.sh), run as a
// runner runs it against a local Vault and a release built here: it refuses
// an archive whose checksum is not the pinned one, and otherwise masks
// every value and every line of it first, then writes each secret to the
// next steps' environment (the names to the step's outputs), never
// printing a value outside the mask commands.
func TestActionMasksAndExports(t *testing.T) {
	root, _ := filepath.Abs("../..")
	dir := t.TempDir()
	const version = "v0.0.1-test"
	rel := filepath.Join(dir, "releases", version)
	os.MkdirAll(filepath.Join(dir, "bin"), 0o755)
	os.MkdirAll(rel, 0o755)
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "bin", "secrets-broker"), "./cmd/secrets-broker")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	archive := "secrets-broker_" + version + "_linux_amd64.tar.gz"
	if out, err := exec.Command("tar", "-C", filepath.Join(dir, "bin"), "-czf", filepath.Join(rel, archive), "secrets-broker").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	data, _ := os.ReadFile(filepath.Join(rel, archive))
	sum := sha256.Sum256(data)
	pinned := hex.EncodeToString(sum[:])
	os.WriteFile(filepath.Join(rel, "secrets-broker_"+version+"_SHA256SUMS"), []byte(pinned+"  "+archive+"\n"), 0o644)

	v := vaulttest.Start(t)
	v.Run(t, "kv", "put", "secret/ci", "db_password=s3cr3t-Pa55", "cert=line-one-XYZ\nline-two-QRS")
	// cosign itself needs Sigstore's public services, which are out of reach
	// here: a stand-in on PATH records how it is called and answers as
	// told, so the script's handling of the signature is what is tested.
	fakeBin := filepath.Join(dir, "fakebin")
	os.MkdirAll(fakeBin, 0o755)
	os.WriteFile(filepath.Join(fakeBin, "cosign"), []byte("#!/bin/sh\necho \"$@\" >>\""+filepath.Join(dir, "cosign-args")+"\"\nexit ${FAKE_COSIGN_EXIT:-0}\n"), 0o755)
	action := func(sha string, extra ...string) (stdout, stderr, outputs, env string, err error) {
		outF, envF := filepath.Join(dir, "output"), filepath.Join(dir, "env")
		os.WriteFile(outF, nil, 0o600)
		os.WriteFile(envF, nil, 0o600)
		cmd := exec.Command(filepath.Join(root, "scripts", "action.sh"))
		cmd.Env = append(extra, "HOME="+dir, "RUNNER_OS=Linux", "RUNNER_ARCH=X64", "RUNNER_TEMP="+dir,
			"GITHUB_OUTPUT="+outF, "GITHUB_ENV="+envF, "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token,
			"INPUT_VERSION="+version, "INPUT_SHA256="+sha, "INPUT_DOWNLOAD_URL=file://"+filepath.Join(dir, "releases"),
			"INPUT_SECRETS=DB_PASSWORD=vault:secret/data/ci#db_password\n  CERT=vault:secret/data/ci#cert\n")
		if len(extra) == 0 || !strings.HasPrefix(extra[0], "PATH=") {
			cmd.Env = append(cmd.Env, "PATH=/usr/bin:/bin")
		}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		ob, _ := os.ReadFile(outF)
		eb, _ := os.ReadFile(envF)
		return o.String(), e.String(), string(ob), string(eb), err
	}

	_, stderr, outputs, env, err := action(strings.Repeat("0", 64), "INPUT_VERIFY_SIGNATURE=false")
	if err == nil || !strings.Contains(stderr, "not the pinned") || outputs != "" || env != "" {
		t.Fatalf("a wrong checksum: %v\n%s\noutputs %q env %q", err, stderr, outputs, env)
	}
	// The signature is checked unless turned off: without cosign, without
	// a signature, or with one cosign rejects, nothing is run or exported.
	refused := func(why, want string, extra ...string) {
		t.Helper()
		_, stderr, outputs, env, err := action(pinned, extra...)
		if err == nil || !strings.Contains(stderr, want) || outputs != "" || env != "" {
			t.Errorf("%s: %v\n%s\noutputs %q env %q", why, err, stderr, outputs, env)
		}
	}
	withCosign := "PATH=" + fakeBin + ":/usr/bin:/bin"
	refused("no cosign on the runner", "cosign is not on the runner")
	refused("no signature in the release", "has no signature", withCosign)
	sig := filepath.Join(rel, "secrets-broker_"+version+"_SHA256SUMS.sigstore.json")
	os.WriteFile(sig, []byte("{}"), 0o644)
	refused("a signature cosign rejects", "is not signed by the release workflow for "+version, withCosign, "FAKE_COSIGN_EXIT=1")
	os.Remove(filepath.Join(dir, "cosign-args"))
	if stdout, stderr, _, _, err := action(pinned, withCosign); err != nil || !strings.Contains(stdout, "signature verified") {
		t.Fatalf("with a signature cosign accepts: %v\n%s\n%s", err, stdout, stderr)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "cosign-args"))
	if want := "verify-blob --bundle " + filepath.Join(dir, ""); !strings.HasPrefix(string(args), want) ||
		!strings.Contains(string(args), "--certificate-identity https://github.com/secrets-broker/secrets-broker/.github/workflows/release.yml@refs/tags/"+version+" ") ||
		!strings.Contains(string(args), "--certificate-oidc-issuer https://token.actions.githubusercontent.com") || strings.Contains(string(args), "regexp") {
		t.Errorf("cosign was not asked for exactly the release workflow at %s: %s", version, args)
	}

	stdout, stderr, outputs, env, err := action(pinned, "INPUT_VERIFY_SIGNATURE=false")
	if err != nil {
		t.Fatalf("action: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "::warning::secrets-broker: verify-signature is false") {
		t.Errorf("no warning that the signature was not verified:\n%s", stdout)
	}
	for _, m := range []string{"::add-mask::s3cr3t-Pa55", "::add-mask::line-one-XYZ", "::add-mask::line-two-QRS"} {
		if !strings.Contains(stdout, m) {
			t.Errorf("stdout lacks %q:\n%s", m, stdout)
		}
	}
	for _, line := range strings.Split(stdout+stderr, "\n") {
		if !strings.HasPrefix(line, "::add-mask::") && (strings.Contains(line, "s3cr3t") || strings.Contains(line, "XYZ")) {
			t.Errorf("a value printed outside a mask command: %q", line)
		}
	}
	if !strings.Contains(env, "DB_PASSWORD<<ghadelimiter_") || !strings.Contains(env, "\ns3cr3t-Pa55\n") || !strings.Contains(env, "\nline-one-XYZ\nline-two-QRS\n") {
		t.Errorf("not exported as a GitHub heredoc:\n%s", env)
	}
	if strings.Contains(outputs, "s3cr3t") {
		t.Errorf("a value in the step's outputs:\n%s", outputs)
	}
	if !strings.Contains(outputs, "names=DB_PASSWORD CERT") {
		t.Errorf("outputs lack the names:\n%s", outputs)
	}

	// A config with secrets of its own and an exec.env: exactly the secrets
	// lines are exported, with their values; nothing else of the config
	// (a later step, a third-party action among them, reads GITHUB_ENV),
	// and nothing of the runner's own environment (RUNNER_TEMP named as a
	// secret was exported from the runner before).
	const ownSecrets = "secrets:\n  db: vault:secret/data/ci#db_password\n  not.an.env.name: vault:secret/data/ci#cert\n"
	withExecEnv, plain := filepath.Join(dir, "broker.yaml"), filepath.Join(dir, "plain.yaml")
	os.WriteFile(withExecEnv, []byte(ownSecrets+"exec:\n  env:\n    OTHER: db\n"), 0o600)
	os.WriteFile(plain, []byte(ownSecrets), 0o600)
	for _, cfg := range []string{withExecEnv, plain} {
		_, stderr, outputs, env, err = action(pinned, "INPUT_CONFIG="+cfg, "INPUT_VERIFY_SIGNATURE=false")
		if err != nil || strings.Count(env, "<<ghadelimiter_") != 2 || !strings.Contains(env, "DB_PASSWORD<<") || !strings.Contains(env, "CERT<<") || !strings.Contains(outputs, "names=DB_PASSWORD CERT") {
			t.Errorf("with %s: %v\n%s\nenv %q outputs %q", cfg, err, stderr, env, outputs)
		}
		if strings.Contains(env, dir) {
			t.Errorf("with %s, the runner's environment was exported: %q", cfg, env)
		}
	}
}
