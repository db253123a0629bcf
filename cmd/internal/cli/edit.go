package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/secrets-broker/secrets-broker/broker/crypt"
	"github.com/secrets-broker/secrets-broker/broker/keys"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// changeTarget is a secrets file about to be changed in place: what it
// holds (a new, empty file when it does not exist yet), the keys that open
// it and the keys new data keys are sealed for.
type changeTarget struct {
	path   string
	sealed *crypt.Sealed
	open   []envelope.KeyWrapper
	seal   []envelope.KeyWrapper
	format crypt.Format
	exists bool
}

// ruleKeys is the key configuration for writing the secrets file path:
// the creation rule that matches it (with which --key must agree), else
// the flags. rule is nil when none applies.
func ruleKeys(path string, kf keyFlags, notice io.Writer) (keys.Config, *crypt.Match, error) {
	if path == "" || path == "-" {
		return kf.keys(), nil, nil
	}
	rule, err := crypt.FindRule(path)
	if err != nil || rule == nil {
		return kf.keys(), nil, err
	}
	if err := rule.Agree(path, kf.keys().NamedSpecs()); err != nil {
		return keys.Config{}, nil, err
	}
	fmt.Fprintf(notice, "secrets-broker: %s: sealing for %s (creation rule in %s)\n", path, strings.Join(rule.Keys, ", "), rule.Source)
	return keys.Config{Specs: rule.Keys, KeyFiles: kf.files}, rule, nil
}

func openTarget(ctx context.Context, path string, kf keyFlags, contextPairs []string, notice io.Writer) (*changeTarget, error) {
	t := &changeTarget{path: path}
	cfg, rule, err := ruleKeys(path, kf, notice)
	if err != nil {
		return nil, err
	}
	seal, err := cfg.ForSealing(ctx)
	if err != nil {
		return nil, err
	}
	t.seal = seal
	data, err := readlimit.Path(ctx, path, crypt.MaxInputLen, path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fileCtx, err := parseContext(contextPairs)
		if err != nil {
			return nil, err
		}
		if rule != nil {
			if fileCtx, err = rule.CheckContext(path, nil, false, fileCtx); err != nil {
				return nil, err
			}
		}
		t.format = crypt.FormatOf(nil, path)
		t.sealed, err = crypt.NewFile(ctx, path, fileCtx, seal)
		if err != nil {
			return nil, err
		}
		t.open = seal
		return t, nil
	case err != nil:
		return nil, err
	}
	if len(contextPairs) > 0 {
		return nil, usageErr("--context sets a new file's context; %s exists and keeps its own", path)
	}
	t.exists = true
	t.format = crypt.FormatOf(data, path)
	if t.sealed, err = crypt.ParseSealed(data, path); err != nil {
		return nil, err
	}
	if rule != nil && t.sealed.File != nil {
		if _, err := rule.CheckContext(path, t.sealed.File.Context(), true, nil); err != nil {
			return nil, err
		}
	}
	if t.open, err = cfg.ForOpeningNow(ctx); err != nil {
		return nil, err
	}
	if !cfg.Explicit() {
		if err := crypt.CheckImplicitSealKeys(t.sealed, seal, path); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *changeTarget) apply(ctx context.Context, changes []envelope.Change) error {
	out, err := t.sealed.Update(ctx, t.open, t.seal, changes)
	if err != nil {
		return err
	}
	data, err := out.Marshal(t.format)
	if err != nil {
		return err
	}
	// One atomic write: a failure leaves the old file as it was.
	return writeOutput(Env{}, t.path, data)
}

func newSet(env Env) *cobra.Command {
	var (
		kf           keyFlags
		in           string
		contextPairs []string
		allowEmpty   bool
	)
	cmd := &cobra.Command{
		Use:   "set FILE NAME",
		Short: "Set one secret of a secrets file (the value from standard input or --in, never an argument)",
		Long: `Seal a value under a fresh data key as entry NAME of the secrets file FILE
(replacing it, or appended when new; FILE is created when it does not exist).
Every other entry stays byte for byte, so the diff shows only this one. The
value is read from standard input or --in, byte for byte (binary files too),
never from the command line. The file is replaced atomically.`,
		Example: `  printf %s "$NEW_PASSWORD" | secrets-broker set secrets.enc.yaml db_password
  secrets-broker set secrets.enc.yaml keystore.jks --in build/keystore.jks`,
		Args: fileAndName,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, name := args[0], args[1]
			if err := (envelope.Binding{Name: name}).Validate(); err != nil {
				return usageErr("%v", err)
			}
			t, err := openTarget(cmd.Context(), path, kf, contextPairs, env.Stderr)
			if err != nil {
				return err
			}
			value, _, err := readInput(cmd.Context(), env, in, envelope.MaxPlaintextLen)
			if err != nil {
				return err
			}
			defer clear(value)
			if len(value) == 0 && !allowEmpty {
				return usageErr("the input is empty, so there is nothing to seal (was the variable you piped unset?); pass --allow-empty to set an empty secret")
			}
			if err := t.apply(cmd.Context(), []envelope.Change{{Name: name, Value: value}}); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "secrets-broker: set %s in %s\n", name, path)
			return nil
		},
	}
	kf.register(cmd, "key spec to open the file and seal the new data key with")
	f := cmd.Flags()
	f.StringVar(&in, "in", "", "read the value from this file instead of standard input")
	f.StringArrayVar(&contextPairs, "context", nil, "KEY=VALUE context of a new file (repeatable)")
	f.BoolVar(&allowEmpty, "allow-empty", false, "set an empty secret (refused by default)")
	return cmd
}

func newUnset(env Env) *cobra.Command {
	var kf keyFlags
	cmd := &cobra.Command{
		Use:   "unset FILE NAME...",
		Short: "Remove secrets from a secrets file",
		Long: `Remove the named entries from the secrets file FILE and seal its integrity
manifest again; every other entry stays byte for byte. A name the file does not
have is an error (exit 6) and nothing is changed.`,
		Example: `  secrets-broker unset secrets.enc.yaml old_api_key`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageErr("unset needs the secrets file and at least one name: unset FILE NAME...")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			if _, err := os.Lstat(path); err != nil {
				return usageErr("%s: %v", path, err)
			}
			t, err := openTarget(cmd.Context(), path, kf, nil, env.Stderr)
			if err != nil {
				return err
			}
			var changes []envelope.Change
			for _, n := range args[1:] {
				changes = append(changes, envelope.Change{Name: n, Remove: true})
			}
			if err := t.apply(cmd.Context(), changes); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "secrets-broker: removed %d secret(s) from %s\n", len(changes), path)
			return nil
		},
	}
	kf.register(cmd, "key spec to open the file and seal its manifest with")
	return cmd
}

// fileAndName takes FILE NAME and nothing more: a third argument would be
// a value on the command line.
func fileAndName(_ *cobra.Command, args []string) error {
	switch {
	case len(args) < 2:
		return usageErr("give the secrets file and the secret's name: set FILE NAME, with the value on standard input or --in FILE")
	case len(args) > 2:
		return usageErr("set takes FILE NAME only: secrets are never taken on the command line (they would show in ps and shell history); pipe the value on stdin or use --in FILE")
	}
	return nil
}

func newEdit(env Env) *cobra.Command {
	var (
		kf           keyFlags
		contextPairs []string
	)
	cmd := &cobra.Command{
		Use:   "edit FILE",
		Short: "Change a secrets file's entries in your editor",
		Long: `Open the secrets file FILE (created when it does not exist) as plaintext
"name: value" YAML in $SECRETS_BROKER_EDITOR, $VISUAL or $EDITOR (default vi),
and seal what you save: unchanged entries keep their envelopes byte for byte (a
clean git diff), changed and new ones get fresh data keys, removed ones go.
The plaintext is a 0600 file in memory (/dev/shm) where the system has it,
overwritten and removed when the command ends, however it ends. An editor that
exits non-zero, or a file saved unchanged, changes nothing; a file that does not
parse is opened again with the error on top.`,
		Example: `  secrets-broker edit secrets.enc.yaml
  EDITOR="code --wait" secrets-broker edit secrets.enc.yaml --key awskms:arn:aws:kms:...`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("edit takes one secrets file: edit FILE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			// A closed terminal (SIGHUP) or SIGQUIT must end the edit
			// through its clean-up too, not kill it with the plaintext
			// still in /dev/shm.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGHUP, syscall.SIGQUIT)
			defer stop()
			t, err := openTarget(ctx, args[0], kf, contextPairs, env.Stderr)
			if err != nil {
				return err
			}
			stdin := env.Stdin
			if stdin == nil {
				stdin = os.Stdin
			}
			changes, err := crypt.Edit(ctx, t.sealed, t.open, crypt.EditDir(), crypt.EditorCommand(stdin, env.Stdout, env.Stderr), env.Stderr)
			defer func() {
				for _, c := range changes {
					clear(c.Value)
				}
			}()
			if err != nil {
				return err
			}
			if len(changes) == 0 {
				fmt.Fprintf(env.Stderr, "secrets-broker: no changes; %s is as it was\n", args[0])
				return nil
			}
			if err := t.apply(ctx, changes); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "secrets-broker: %d change(s) sealed into %s\n", len(changes), args[0])
			return nil
		},
	}
	kf.register(cmd, "key spec to open the file and seal new data keys with")
	cmd.Flags().StringArrayVar(&contextPairs, "context", nil, "KEY=VALUE context of a new file (repeatable)")
	return cmd
}

func newTextconv(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "textconv FILE",
		Short: "Show a secrets file as git diff should compare it: names and fingerprints, never values",
		Long: `Print one line per entry of the secrets file FILE: its name, a fingerprint of its
sealed value and its key ids. Used as a git diff driver, "git diff" then names
the entries that were added, removed or changed, and shows no value. Needs no
key. Set it up once per clone:

  git config diff.secrets-broker.textconv "secrets-broker textconv"
  echo '*.enc.yaml diff=secrets-broker' >> .gitattributes`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErr("textconv takes one file: textconv FILE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			data, path, err := readInput(cmd.Context(), env, args[0], crypt.MaxInputLen)
			if err != nil {
				return err
			}
			s, err := crypt.ParseSealed(data, path)
			if err != nil {
				return err
			}
			crypt.Textconv(s, env.Stdout)
			return nil
		},
	}
}
