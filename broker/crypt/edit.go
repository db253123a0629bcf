package crypt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/secrets-broker/secrets-broker/broker/format"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// Editor opens path for the user and returns when they are done; an
// error (the editor exited non-zero) cancels the edit.
type Editor func(ctx context.Context, path string) error

// EditorCommand is the user's editor: $SECRETS_BROKER_EDITOR, $VISUAL,
// $EDITOR, else vi (notepad on Windows), run with the file as its last
// argument and the terminal as its standard streams.
func EditorCommand(stdin io.Reader, stdout, stderr io.Writer) Editor {
	return func(ctx context.Context, path string) error {
		line := ""
		for _, v := range []string{"SECRETS_BROKER_EDITOR", "VISUAL", "EDITOR"} {
			if line = strings.TrimSpace(os.Getenv(v)); line != "" {
				break
			}
		}
		if line == "" {
			line = "vi"
			if runtime.GOOS == "windows" {
				line = "notepad"
			}
		}
		argv := append(strings.Fields(line), path)
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("the editor (%s) failed: %w", argv[0], err)
		}
		return nil
	}
}

// editHeader opens the plaintext the editor shows.
const editHeader = `# secrets-broker edit: one "name: value" per secret. Save and quit to seal the
# changes (unchanged entries keep their envelopes byte for byte); quit without
# saving to change nothing. A removed line removes that secret.
# Multi-line values use "|"; bytes that are not text are !!binary base64.
`

// errorMark starts the lines edit adds above the text after a mistake.
const errorMark = "# ERROR: "

// EditDir is where the plaintext is put while the editor has it: memory
// (/dev/shm) where the system has it, else the temporary directory.
func EditDir() string {
	if runtime.GOOS == "linux" {
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			if f, err := os.CreateTemp("/dev/shm", ".secrets-broker-probe-*"); err == nil {
				f.Close()
				os.Remove(f.Name())
				return "/dev/shm"
			}
		}
	}
	return os.TempDir()
}

// Edit lets the user change the entries of s in an editor and returns the
// changes to apply, or none when nothing changed. The plaintext lives in a
// 0600 file in dir, overwritten and removed before Edit returns (on every
// path: a cancelled ctx, a signal that ends the command, a failed editor).
// A text that does not parse is shown again with the error above it;
// leaving it unchanged then cancels.
func Edit(ctx context.Context, s *Sealed, open []envelope.KeyWrapper, dir string, edit Editor, log io.Writer) ([]envelope.Change, error) {
	var old []envelope.Plain
	if len(s.File.Entries) > 0 {
		var err error
		if old, err = s.File.OpenAll(ctx, envelope.FileExpect{}, open, 8); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, v := range old {
			clear(v.Value)
		}
	}()
	body, err := format.Marshal(old, format.YAML)
	if err != nil {
		return nil, err
	}
	if len(old) == 0 {
		body = []byte("# example_name: value\n")
	}
	text := append([]byte(editHeader), body...)
	clear(body)
	f, err := os.CreateTemp(dir, ".secrets-broker-edit-*.yaml")
	if err != nil {
		return nil, fail.Mark(fail.FileSystem, fmt.Errorf("cannot make the temporary file to edit in %s: %w", dir, err))
	}
	path := f.Name()
	f.Close()
	defer func() {
		// Overwrite, then remove: the editor may have left a copy of its
		// own (swap, backup) beside it, which we cannot know.
		if fi, err := os.Stat(path); err == nil {
			os.WriteFile(path, make([]byte, fi.Size()), 0o600)
		}
		os.Remove(path)
	}()
	for {
		if err := os.WriteFile(path, text, 0o600); err != nil {
			return nil, fail.Mark(fail.FileSystem, err)
		}
		if err := edit(ctx, path); err != nil {
			clear(text)
			return nil, fail.Mark(fail.Usage, fmt.Errorf("%w; nothing was changed", err))
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return nil, fail.Mark(fail.FileSystem, err)
		}
		unchanged := bytes.Equal(got, text)
		clear(text)
		if unchanged {
			withError := bytes.HasPrefix(got, []byte(errorMark))
			clear(got)
			if withError {
				return nil, fail.Mark(fail.Usage, errors.New("the edit was left with an error in it; nothing was changed"))
			}
			return nil, nil
		}
		values, perr := ParsePlainFile(stripErrors(got), filepath.Base(path))
		if perr != nil {
			fmt.Fprintf(log, "secrets-broker: %v; opening the editor again\n", perr)
			text = append([]byte(errorMark+oneLine(perr.Error())+"\n"+errorMark+"fix it and save, or quit without saving to cancel\n"), stripErrors(got)...)
			clear(got)
			continue
		}
		clear(got)
		return diff(old, values), nil
	}
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// stripErrors drops the error lines a previous round put on top.
func stripErrors(text []byte) []byte {
	for bytes.HasPrefix(text, []byte(errorMark)) {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			return nil
		}
		text = text[i+1:]
	}
	return text
}

// diff is what changed from old to now: values set or added (in now's
// order) and names removed.
func diff(old, now []envelope.Plain) []envelope.Change {
	had := make(map[string][]byte, len(old))
	for _, v := range old {
		had[v.Name] = v.Value
	}
	keep := map[string]bool{}
	var changes []envelope.Change
	for _, v := range now {
		keep[v.Name] = true
		if was, ok := had[v.Name]; ok && bytes.Equal(was, v.Value) {
			clear(v.Value)
			continue
		}
		changes = append(changes, envelope.Change{Name: v.Name, Value: v.Value})
	}
	for _, v := range old {
		if !keep[v.Name] {
			changes = append(changes, envelope.Change{Name: v.Name, Remove: true})
		}
	}
	return changes
}
