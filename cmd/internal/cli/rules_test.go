package cli_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A creation rule picks a file's keys and context by its path: encrypt,
// set and edit of a new file need no --key, and a --key that is not the
// rule's is refused, so a production file cannot be sealed for the wrong
// key by accident.
func TestCreationRulesPickKeysByPath(t *testing.T) {
	dir := setup(t)
	prodKey := filepath.Join(dir, "prod.key")
	prodID := strings.TrimSpace(mustRun(t, "", "keygen", "--out", prodKey))
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(filepath.Join(repo, "prod"), 0o755)
	os.MkdirAll(filepath.Join(repo, "dev"), 0o755)
	os.WriteFile(filepath.Join(repo, ".secrets-broker.yaml"), []byte(`creation_rules:
  - path_regex: ^prod/
    keys: ["`+prodID+`"]
    context: {env: prod}
  - path_regex: .*
    keys: [local]
`), 0o600)
	prod := filepath.Join(repo, "prod", "secrets.enc.yaml")
	mustRun(t, "p", "set", prod, "db_password", "--key-file", prodKey)
	ins := mustRun(t, "", "inspect", "--in", prod)
	if !strings.Contains(ins, "keys:    "+prodID+"\n") || !strings.Contains(ins, "env=prod") {
		t.Fatalf("the prod file is not sealed by its rule:\n%s", ins)
	}
	// The default local key alone cannot open it: it was sealed for the
	// rule's key only.
	if r := run(t, "", "decrypt", "--in", prod, "--entry", "db_password"); r.code != 3 {
		t.Fatalf("the default key opened a file sealed for the prod key: %d %s", r.code, r.stderr)
	}
	// A --key other than the rule's is refused, naming the rule.
	r := run(t, "p2", "set", prod, "db_password", "--key", "local")
	wantExit(t, r, 2, "matches the creation rule in "+filepath.Join(repo, ".secrets-broker.yaml")+", rule 1")
	// dev/ falls to the second rule: the default local key.
	dev := filepath.Join(repo, "dev", "secrets.enc.yaml")
	mustRun(t, "d", "set", dev, "db_password")
	if got := mustRun(t, "", "decrypt", "--in", dev, "--entry", "db_password"); got != "d" {
		t.Fatalf("dev = %q", got)
	}
	// A malformed rules file is named.
	os.WriteFile(filepath.Join(repo, ".secrets-broker.yaml"), []byte("creation_rules:\n  - path_regex: \"(\"\n    keys: [local]\n"), 0o600)
	wantExit(t, run(t, "x", "set", dev, "other"), 2, "rule 1: path_regex")
}

// textconv as a real git diff driver (the binary built here, git's own
// textconv config): git diff names the entries that changed and shows no
// value.
func TestTextconvMakesGitDiffNameChangedEntries(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is required for this test")
	}
	dir := setup(t)
	bin := filepath.Join(dir, "secrets-broker")
	if out, err := exec.Command("go", "build", "-o", bin, "../../secrets-broker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(repo, 0o755)
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "diff.secrets-broker.textconv=" + bin + " textconv"}, args...)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	git("init", "-q")
	os.WriteFile(filepath.Join(repo, ".gitattributes"), []byte("*.enc.yaml diff=secrets-broker\n"), 0o644)
	f := filepath.Join(repo, "secrets.enc.yaml")
	mustRun(t, "first-value-1", "set", f, "a")
	mustRun(t, "first-value-2", "set", f, "b")
	git("add", ".")
	git("commit", "-qm", "secrets")
	mustRun(t, "second-value-2", "set", f, "b")
	mustRun(t, "new-3", "set", f, "c")
	diff := git("diff", "--no-color")
	for _, want := range []string{"\n-b: sealed ", "\n+b: sealed ", "\n+c: sealed "} {
		if !strings.Contains(diff, want) {
			t.Errorf("git diff lacks %q:\n%s", want, diff)
		}
	}
	if strings.Contains(diff, "\n-a: ") || strings.Contains(diff, "value-") || strings.Contains(diff, "sbe1:") {
		t.Errorf("git diff shows an unchanged entry, a value or an envelope:\n%s", diff)
	}
}

// rewrap with no --add-key or --remove-key brings a file's keys in line
// with its creation rule (SOPS' updatekeys).
func TestRewrapToTheRule(t *testing.T) {
	dir := setup(t)
	prodKey := filepath.Join(dir, "prod.key")
	prodID := strings.TrimSpace(mustRun(t, "", "keygen", "--out", prodKey))
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(repo, 0o755)
	f := filepath.Join(repo, "secrets.enc.yaml")
	mustRun(t, "v", "set", f, "a") // sealed for the default local key, before the rule
	wantExit(t, run(t, "", "rewrap", "--in", f, "-w"), 2, "creation rule")
	os.WriteFile(filepath.Join(repo, ".secrets-broker.yaml"), []byte("creation_rules:\n  - path_regex: .*\n    keys: [\""+prodID+"\"]\n"), 0o600)
	r := run(t, "", "rewrap", "--in", f, "-w", "--key", "local", "--key-file", prodKey)
	if r.code != 0 || !strings.Contains(r.stderr, "adding 1, removing 1") {
		t.Fatalf("rewrap to the rule: %d %s", r.code, r.stderr)
	}
	if ins := mustRun(t, "", "inspect", "--in", f); !strings.Contains(ins, "keys:    "+prodID+"\n") {
		t.Fatalf("after rewrap:\n%s", ins)
	}
	if r := run(t, "", "decrypt", "--in", f, "--entry", "a"); r.code != 3 {
		t.Fatalf("the removed default key still opens it: %d", r.code)
	}
	if got := mustRun(t, "", "decrypt", "--in", f, "--entry", "a", "--key-file", prodKey); got != "v" {
		t.Fatalf("a = %q", got)
	}
}

// An output's left_delimiter/right_delimiter (consul-template's) renders
// {{ }} as text and [[ ]] as calls.
func TestOutputDelimiters(t *testing.T) {
	dir := setup(t)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("pw-1"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("output_root: out\nsecrets:\n  pw: file:pw\noutputs:\n  - path: helm.yaml\n    left_delimiter: '[['\n    right_delimiter: ']]'\n    template_text: 'password: [[ secret \"pw\" ]] # {{ .Values.keep }}'\n"), 0o600)
	mustRun(t, "", "run", "--once", "--config", cfg)
	if got := readFile(t, filepath.Join(dir, "out", "helm.yaml")); got != "password: pw-1 # {{ .Values.keep }}" {
		t.Fatalf("helm.yaml = %q", got)
	}
	os.WriteFile(cfg, []byte("output_root: out\noutputs:\n  - path: x\n    left_delimiter: '[['\n    template_text: x\n"), 0o600)
	wantExit(t, run(t, "", "validate", "--config", cfg), 2, "left_delimiter and right_delimiter go together")
}

// A rules file others may write, or one above the repository's root, does
// not choose the keys: the first is refused, the second never read; the
// rule used is named; $SECRETS_BROKER_KEYS must agree with it.
func TestCreationRulesAreTrustedOnlyFromTheUser(t *testing.T) {
	dir := setup(t)
	above := filepath.Join(dir, "shared")
	repo := filepath.Join(above, "repo")
	os.MkdirAll(filepath.Join(repo, ".git"), 0o755)
	planted := "creation_rules:\n  - path_regex: .*\n    keys: [\"awskms:arn:aws:kms:eu-west-1:999999999999:key/attacker\"]\n"
	os.WriteFile(filepath.Join(above, ".secrets-broker.yaml"), []byte(planted), 0o600)
	f := filepath.Join(repo, "app.enc.yaml")
	mustRun(t, "v", "set", f, "a") // the file above .git is never read
	if ins := mustRun(t, "", "inspect", "--in", f); strings.Contains(ins, "attacker") {
		t.Fatalf("a rules file above the repository chose the keys:\n%s", ins)
	}
	rules := filepath.Join(repo, ".secrets-broker.yaml")
	os.WriteFile(rules, []byte("creation_rules:\n  - path_regex: .*\n    keys: [local]\n"), 0o600)
	os.Chmod(rules, 0o666)
	wantExit(t, run(t, "w", "set", f, "b"), 2, "may be written by others")
	os.Chmod(rules, 0o600)
	r := run(t, "w", "set", f, "b")
	if r.code != 0 || !strings.Contains(r.stderr, "sealing for local (creation rule in "+rules+", rule 1)") {
		t.Fatalf("the rule used is not named: %d %s", r.code, r.stderr)
	}
	t.Setenv("SECRETS_BROKER_KEYS", "awskms:arn:aws:kms:eu-west-1:111122223333:key/other")
	wantExit(t, run(t, "x", "set", f, "c"), 2, "$SECRETS_BROKER_KEYS asks for")
}
