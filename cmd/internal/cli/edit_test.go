package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/cmd/internal/cli"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
)

// entryLines are a secrets file's entry lines by name: what a git diff
// compares.
func entryLines(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(readFile(t, path), "\n") {
		if strings.HasPrefix(l, "  ") {
			name, _, _ := strings.Cut(strings.TrimSpace(l), ":")
			out[name] = l
		}
	}
	return out
}

// set and unset change one entry and leave every other byte for byte;
// values come from stdin or --in (binary too), never from arguments.
func TestSetAndUnsetTouchOnlyTheirEntry(t *testing.T) {
	dir := setup(t)
	f := filepath.Join(dir, "secrets.enc.yaml")
	mustRun(t, "pw-1", "set", f, "db_password")
	mustRun(t, "ak-1", "set", f, "api_key")
	bin := []byte{0, 1, 2, 0xff, '\n', 'x'}
	os.WriteFile(filepath.Join(dir, "keystore.jks"), bin, 0o600)
	mustRun(t, "", "set", f, "keystore.jks", "--in", filepath.Join(dir, "keystore.jks"))
	before := entryLines(t, f)
	mustRun(t, "pw-2", "set", f, "db_password")
	after := entryLines(t, f)
	if after["api_key"] != before["api_key"] || after["keystore.jks"] != before["keystore.jks"] {
		t.Fatal("set db_password changed another entry's line")
	}
	if after["db_password"] == before["db_password"] {
		t.Fatal("set did not reseal the entry it set")
	}
	if got := mustRun(t, "", "decrypt", "--in", f, "--entry", "db_password"); got != "pw-2" {
		t.Fatalf("db_password = %q", got)
	}
	if got := mustRun(t, "", "decrypt", "--in", f, "--entry", "keystore.jks"); !bytes.Equal([]byte(got), bin) {
		t.Fatalf("a binary value did not round-trip: %q", got)
	}
	mustRun(t, "", "unset", f, "api_key")
	left := entryLines(t, f)
	if _, ok := left["api_key"]; ok || left["db_password"] != after["db_password"] || len(left) != 2 {
		t.Fatalf("after unset: %v", left)
	}
	// A name the file does not have: exit 6, file unchanged.
	was := readFile(t, f)
	wantExit(t, run(t, "", "unset", f, "nope"), 6, `no secret "nope"`)
	if readFile(t, f) != was {
		t.Fatal("a failed unset changed the file")
	}
	// An empty value is refused unless asked for.
	wantExit(t, run(t, "", "set", f, "empty"), 2, "--allow-empty")
	// No value from the command line: one argument too many.
	if r := run(t, "", "set", f, "db_password", "hunter2"); r.code != 2 {
		t.Fatalf("set with a value argument: exit %d", r.code)
	}
}

// encrypt --file onto an existing secrets file refuses, saying which flag
// does what; --merge keeps the file's other entries byte for byte.
func TestEncryptOntoAnExistingFileMergesOrRefuses(t *testing.T) {
	dir := setup(t)
	out := filepath.Join(dir, "secrets.enc.yaml")
	plain := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plain, []byte("a: one\nb: two\n"), 0o600)
	mustRun(t, "", "encrypt", "--file", plain, "--out", out)
	before := entryLines(t, out)
	os.WriteFile(plain, []byte("b: zwei\nc: drei\n"), 0o600)
	r := run(t, "", "encrypt", "--file", plain, "--out", out)
	wantExit(t, r, 2, "--merge")
	if !strings.Contains(r.stderr, "--force") || !strings.Contains(r.stderr, "nothing was written") {
		t.Fatalf("the refusal does not say both ways: %s", r.stderr)
	}
	mustRun(t, "", "encrypt", "--file", plain, "--out", out, "--merge")
	after := entryLines(t, out)
	if after["a"] != before["a"] || len(after) != 3 {
		t.Fatalf("merge changed or dropped an entry: %v", after)
	}
	if got := mustRun(t, "", "decrypt", "--in", out); got != "a: one\nb: zwei\nc: drei\n" {
		t.Fatalf("after merge:\n%s", got)
	}
}

// A file sealed for a key besides the default one gets no entry sealed
// only for the default key: the user names the keys.
func TestSetNamesTheKeysItWouldLeaveOut(t *testing.T) {
	dir := setup(t)
	other := filepath.Join(dir, "team.key")
	id := strings.TrimSpace(mustRun(t, "", "keygen", "--out", other))
	f := filepath.Join(dir, "secrets.enc.yaml")
	mustRun(t, "v", "set", f, "a", "--key", "local", "--key", id, "--key-file", other)
	r := run(t, "w", "set", f, "b")
	wantExit(t, r, 2, "sealed for keys besides the default local key")
	if !strings.Contains(r.stderr, id) {
		t.Fatalf("the refusal does not name the key left out: %s", r.stderr)
	}
	mustRun(t, "w", "set", f, "b", "--key", "local", "--key", id, "--key-file", other)
}

// Errors a new user meets: a missing default key file is named with the
// keygen command that makes it; /dev/null is not a terminal.
func TestKeyAndInputErrorsSayWhatToDo(t *testing.T) {
	dir := setup(t)
	f := filepath.Join(dir, "secrets.enc.yaml")
	mustRun(t, "v", "set", f, "a")
	missing := filepath.Join(dir, "elsewhere", "local.key")
	t.Setenv("SECRETS_BROKER_LOCAL_KEY", missing)
	r := run(t, "", "decrypt", "--in", f)
	wantExit(t, r, 3, missing)
	if !strings.Contains(r.stderr, "secrets-broker keygen --out "+missing) || !strings.Contains(r.stderr, "SECRETS_BROKER_LOCAL_KEY") {
		t.Fatalf("the error does not say how to make the key: %s", r.stderr)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devnull.Close()
	var out, errb brokertest.Buffer
	code := cli.Main(context.Background(), cli.Env{Args: []string{"encrypt", "--name", "x"}, Stdin: devnull, Stdout: &out, Stderr: &errb, Version: "test"})
	if code != 2 || strings.Contains(errb.String(), "terminal") || !strings.Contains(errb.String(), "input is empty") {
		t.Fatalf("encrypt from /dev/null: exit %d, %s", code, errb.String())
	}
}

// exec --env-file (SOPS' exec-env): every entry is a variable for one
// command, with exec's redaction and credential stripping.
func TestExecEnvFile(t *testing.T) {
	dir := setup(t)
	f := filepath.Join(dir, "secrets.enc.yaml")
	mustRun(t, "pw-env-file-1", "set", f, "DB_PASSWORD")
	mustRun(t, "ak-env-file-2", "set", f, "API_KEY")
	r := run(t, "", "exec", "--env-file", f, "--redact-output", "--", "sh", "-c", `echo "db=$DB_PASSWORD"; echo "len=${#API_KEY}"; echo "key=${SECRETS_BROKER_LOCAL_KEY:-unset}"`)
	if r.code != 0 {
		t.Fatalf("exec --env-file: %d %s", r.code, r.stderr)
	}
	if r.stdout != "db=[redacted]\nlen=13\nkey=unset\n" {
		t.Fatalf("the command printed %q", r.stdout)
	}
	mustRun(t, "v", "set", f, "not-an-env-name")
	wantExit(t, run(t, "", "exec", "--env-file", f, "--", "true"), 2, `entry "not-an-env-name" is not an environment variable name`)
}

// rewrap and rotate --dry-run say which entries and key ids would change,
// never a value, and write nothing.
func TestRewrapAndRotateDryRun(t *testing.T) {
	dir := setup(t)
	other := filepath.Join(dir, "team.key")
	id := strings.TrimSpace(mustRun(t, "", "keygen", "--out", other))
	f := filepath.Join(dir, "secrets.enc.yaml")
	mustRun(t, "dry-run-value-1", "set", f, "a")
	mustRun(t, "dry-run-value-2", "set", f, "b")
	was := readFile(t, f)
	out := mustRun(t, "", "rewrap", "--in", f, "-w", "--add-key", id, "--key-file", other, "--key", "local", "--dry-run")
	for _, want := range []string{"a: keys local:", "-> local:", id, "(integrity manifest): keys", "dry run: 3 of 3 would change"} {
		if !strings.Contains(out, want) {
			t.Errorf("rewrap --dry-run lacks %q:\n%s", want, out)
		}
	}
	out2 := mustRun(t, "", "rotate", "--in", f, "-w", "--key", "local", "--dry-run")
	if !strings.Contains(out2, "b: new data key; keys local:") || !strings.Contains(out2, "3 of 3 would change") {
		t.Errorf("rotate --dry-run:\n%s", out2)
	}
	if strings.Contains(out+out2, "dry-run-value") {
		t.Fatal("a dry run printed a value")
	}
	if readFile(t, f) != was {
		t.Fatal("a dry run wrote the file")
	}
}

// encrypt --file takes nested YAML/JSON (leaves as dotted names), dotenv
// files by name, and !!binary; decrypt gives every value back byte for
// byte.
func TestEncryptFileShapes(t *testing.T) {
	dir := setup(t)
	nested := filepath.Join(dir, "app.json")
	os.WriteFile(nested, []byte(`{"db": {"user": "u", "hosts": ["h1", "h2"]}, "blob": "x"}`), 0o600)
	out := filepath.Join(dir, "app.enc.yaml")
	mustRun(t, "", "encrypt", "--file", nested, "--out", out)
	if got := mustRun(t, "", "decrypt", "--in", out, "--entry", "db.hosts.1"); got != "h2" {
		t.Fatalf("db.hosts.1 = %q", got)
	}
	env := filepath.Join(dir, "prod.env")
	os.WriteFile(env, []byte("# prod\nexport A=1\nB=\"multi\nline \\$x\"\n"), 0o600)
	out2 := filepath.Join(dir, "prod.enc.yaml")
	mustRun(t, "", "encrypt", "--file", env, "--out", out2)
	if got := mustRun(t, "", "decrypt", "--in", out2, "--format", "yaml"); got != "A: \"1\"\nB: |-\n    multi\n    line $x\n" {
		t.Fatalf("dotenv round trip:\n%s", got)
	}
	// Binary: set, decrypt the whole file as YAML (!!binary), seal that
	// again, and the bytes are the same.
	bin := []byte{0xca, 0xfe, 0, 0xba, 0xbe, '\n'}
	os.WriteFile(filepath.Join(dir, "k.bin"), bin, 0o600)
	mustRun(t, "", "set", out2, "K", "--in", filepath.Join(dir, "k.bin"))
	plain := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plain, []byte(mustRun(t, "", "decrypt", "--in", out2)), 0o600)
	if !strings.Contains(readFile(t, plain), "K: !!binary ") {
		t.Fatalf("binary value not shown as !!binary:\n%s", readFile(t, plain))
	}
	out3 := filepath.Join(dir, "again.enc.yaml")
	mustRun(t, "", "encrypt", "--file", plain, "--out", out3)
	if got := mustRun(t, "", "decrypt", "--in", out3, "--entry", "K"); !bytes.Equal([]byte(got), bin) {
		t.Fatalf("binary after a round trip: %q", got)
	}
}
