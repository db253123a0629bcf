package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/cmd/internal/cli"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
)

// editor writes an editor script: it records the file it was given (path
// and mode) in log, then runs body with the file as $1.
func editor(t *testing.T, dir, log, body string) string {
	t.Helper()
	p := filepath.Join(dir, "editor.sh")
	script := "#!/bin/sh\nprintf '%s %s\\n' \"$1\" \"$(stat -c %a \"$1\")\" >> " + log + "\n" + body + "\n"
	if err := os.WriteFile(p, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func editedPaths(t *testing.T, log string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, log)), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 || f[1] != "600" {
			t.Fatalf("the editor got %q: want a path with mode 600", l)
		}
		out = append(out, f[0])
	}
	return out
}

// edit: unchanged entries keep their envelopes byte for byte, a changed
// one is resealed, a removed one goes, a new one is added; the plaintext
// was a 0600 file in memory that is gone afterwards.
func TestEditSealsOnlyWhatChanged(t *testing.T) {
	dir := setup(t)
	f := filepath.Join(dir, "secrets.enc.yaml")
	plain := filepath.Join(dir, "plain.yaml")
	os.WriteFile(plain, []byte("a: one\nb: two\nc: three\n"), 0o600)
	mustRun(t, "", "encrypt", "--file", plain, "--out", f)
	before := entryLines(t, f)
	log := filepath.Join(dir, "editor.log")
	t.Setenv("SECRETS_BROKER_EDITOR", editor(t, dir, log, `sed -i -e 's/^b: two$/b: zwei/' -e '/^c: /d' "$1" && printf 'd: |-\n  line 1\n  line 2\n' >> "$1"`))
	mustRun(t, "", "edit", f)
	after := entryLines(t, f)
	if after["a"] != before["a"] || after["b"] == before["b"] || after["c"] != "" || after["d"] == "" {
		t.Fatalf("entries after edit: %v", after)
	}
	if got := mustRun(t, "", "decrypt", "--in", f); got != "a: one\nb: zwei\nd: |-\n    line 1\n    line 2\n" {
		t.Fatalf("after edit:\n%s", got)
	}
	paths := editedPaths(t, log)
	if _, err := os.Stat("/dev/shm"); err == nil && !strings.HasPrefix(paths[0], "/dev/shm/") {
		t.Errorf("the plaintext was at %s, not in memory", paths[0])
	}
	if _, err := os.Stat(paths[0]); !os.IsNotExist(err) {
		t.Fatal("the plaintext file is still there")
	}
}

// An editor that fails, or a file saved unchanged, changes nothing; a
// syntax error reopens the editor with the error on top.
func TestEditCancelsAndReopens(t *testing.T) {
	dir := setup(t)
	f := filepath.Join(dir, "secrets.enc.yaml")
	mustRun(t, "v1", "set", f, "a")
	was := readFile(t, f)
	log := filepath.Join(dir, "editor.log")
	t.Setenv("SECRETS_BROKER_EDITOR", editor(t, dir, log, `echo 'a: changed' > "$1"; exit 3`))
	wantExit(t, run(t, "", "edit", f), 2, "nothing was changed")
	t.Setenv("SECRETS_BROKER_EDITOR", editor(t, dir, log, `true`))
	if r := run(t, "", "edit", f); r.code != 0 || !strings.Contains(r.stderr, "no changes") {
		t.Fatalf("an unchanged save: %d %s", r.code, r.stderr)
	}
	if readFile(t, f) != was {
		t.Fatal("a cancelled edit changed the file")
	}
	// First round: a broken file. Second round: the error is on top; fix.
	t.Setenv("SECRETS_BROKER_EDITOR", editor(t, dir, log, `if head -1 "$1" | grep -q '^# ERROR: '; then echo 'a: fixed' > "$1"; else echo 'a: [unclosed' > "$1"; fi`))
	r := run(t, "", "edit", f)
	if r.code != 0 || !strings.Contains(r.stderr, "opening the editor again") {
		t.Fatalf("edit with a syntax error: %d %s", r.code, r.stderr)
	}
	if got := mustRun(t, "", "decrypt", "--in", f, "--entry", "a"); got != "fixed" {
		t.Fatalf("a = %q", got)
	}
	for _, p := range editedPaths(t, log) {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("plaintext %s left behind", p)
		}
	}
}

// Ending the command while the editor is open (Ctrl-C, SIGTERM: the
// command's context ends; a closed terminal: SIGHUP) removes the plaintext
// too.
func TestEditRemovesThePlaintextWhenInterrupted(t *testing.T) {
	t.Run("cancelled", func(t *testing.T) { editInterrupted(t, func(cancel func()) { cancel() }) })
	t.Run("SIGHUP", func(t *testing.T) {
		editInterrupted(t, func(func()) { syscall.Kill(os.Getpid(), syscall.SIGHUP) })
	})
}

func editInterrupted(t *testing.T, interrupt func(cancel func())) {
	dir := setup(t)
	f := filepath.Join(dir, "secrets.enc.yaml")
	mustRun(t, "v1", "set", f, "a")
	log := filepath.Join(dir, "editor.log")
	t.Setenv("SECRETS_BROKER_EDITOR", editor(t, dir, log, `exec sleep 60`))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		var out, errb brokertest.Buffer
		done <- cli.Main(ctx, cli.Env{Args: []string{"edit", f}, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Version: "test"})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, _ := os.ReadFile(log); len(b) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the editor did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	path := editedPaths(t, log)[0]
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the plaintext is not there while the editor runs: %v", err)
	}
	interrupt(cancel)
	defer cancel()
	if code := <-done; code == 0 {
		t.Fatal("an interrupted edit exited 0")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("the plaintext file is still there after the command ended")
	}
}
