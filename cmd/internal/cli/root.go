// Package cli owns the secrets-broker command line: cobra commands that parse
// flags and call the broker package. It does no work of its own.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/keys"
	"github.com/secrets-broker/secrets-broker/internal/atomicfile"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// Env is what a run of the command sees of its process.
type Env struct {
	Args           []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Version, Commit and Date (the commit's time, UTC) are stamped at
	// link time (scripts/ldflags.sh).
	Version, Commit, Date string

	// session is what one run of Main shares between its command and
	// Main itself: the JSON logger the command chose with --log-json (and
	// --log-level), which Main reports the command's error with.
	session *session
}

type session struct{ jsonLog *slog.Logger }

// ExitCodesHelp is the exit-code table, also in docs/exit-codes.md.
const ExitCodesHelp = `Exit codes:
  0  success
  1  internal error
  2  usage: bad flag, argument, key spec or configuration
  3  key unavailable: no configured key can unwrap the data key, or the key
     service refused (access denied, key disabled or missing)
  4  integrity: decryption or an integrity check failed (tampered, renamed,
     moved or truncated data, wrong name or context)
  5  unavailable: Vault, KMS or an IdP could not be reached or is throttling; retry
  6  not found: the secret, entry, path or field does not exist
  7  denied: the secret source or the IdP refused the request or the credentials
  8  format: input is not a valid envelope or secrets file, or is over its size limit
  9  file system: disk full, read-only file system, permission denied, or a path
     that leaves its root`

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, env Env) int {
	env.session = &session{}
	root := newRoot(env)
	root.SetArgs(env.Args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	// With --log-json the error is a JSON line through the command's
	// logger, like every other line; otherwise a sentence for a person.
	report := func(msg string, code int) {
		if log := env.session.jsonLog; log != nil {
			log.Error(msg, "exit_code", code)
			return
		}
		fmt.Fprintln(env.Stderr, "secrets-broker: "+msg)
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		report("interrupted", 130)
		return 130
	}
	var ee *broker.ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	code := fail.KindOf(err).ExitCode()
	report(err.Error(), code)
	return code
}

func usageErr(format string, args ...any) error {
	return fail.Mark(fail.Usage, fmt.Errorf(format, args...))
}

func newRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "secrets-broker",
		Short: "Get secrets to the services that need them, safely",
		Long: `secrets-broker seals secrets in envelopes (a fresh data key per secret,
wrapped by a local key, AWS KMS or Vault Transit) and opens them only where a
configured key allows.

` + keys.SpecHelp + `

` + ExitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.Version = versionLine(env)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fail.Mark(fail.Usage, err) })
	root.AddCommand(
		newVersion(env),
		newKeygen(env),
		newEncrypt(env),
		newDecrypt(env),
		newEdit(env),
		newSet(env),
		newUnset(env),
		newTextconv(env),
		newRewrap(env),
		newRotate(env),
		newInspect(env),
		newValidate(env),
		newRender(env),
		newRun(env),
		newExec(env),
		newHealth(env),
		newMigrate(env),
		newInjector(env),
	)
	return root
}

// noArgs refuses positional arguments, with a hint that secrets never go on
// the command line.
func noSecretArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErr("unexpected argument(s): secrets are never taken on the command line (they would show in ps and shell history); pipe the value on stdin or use --in FILE")
	}
	return nil
}

func newVersion(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionLine(env))
			return nil
		},
	}
}

// versionLine is what version and --version print.
func versionLine(env Env) string {
	v, commit, date := env.Version, env.Commit, env.Date
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && commit == "" {
				commit = s.Value
			}
			if s.Key == "vcs.time" && date == "" {
				date = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if commit == "" {
		commit = "unknown"
	}
	if date == "" {
		date = "unknown"
	}
	return fmt.Sprintf("secrets-broker %s (commit %s, built %s, envelope format v1)", v, commit, date)
}

type keyFlags struct {
	specs []string
	files []string
}

func (k *keyFlags) register(cmd *cobra.Command, keyHelp string) {
	cmd.Flags().StringArrayVar(&k.specs, "key", nil, keyHelp+" (repeatable; default $"+keys.Env+", else the default local key)")
	cmd.Flags().StringArrayVar(&k.files, "key-file", nil, "local key file to load (repeatable)")
}

func (k *keyFlags) keys() keys.Config {
	return keys.Config{Specs: k.specs, KeyFiles: k.files}
}

func parseContext(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usageErr("--context %q is not KEY=VALUE", p)
		}
		if _, dup := out[k]; dup {
			return nil, usageErr("--context key %q is given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

// readInput reads --in (a path, or "-" for stdin), at most limit bytes.
// Ctrl-C or SIGTERM while it waits ends the command (exit 130).
func readInput(ctx context.Context, env Env, in string, limit int64) ([]byte, string, error) {
	if in == "" || in == "-" {
		// A terminal, not any character device (/dev/null is one too).
		if f, ok := env.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			fmt.Fprintln(env.Stderr, "secrets-broker: reading from the terminal; end with Ctrl-D")
		}
		data, err := readlimit.Stream(ctx, env.Stdin, limit, "standard input")
		return data, "standard input", err
	}
	data, err := readlimit.Path(ctx, in, limit, in)
	return data, in, err
}

// writeOutput writes to --out (mode 0600, atomically) or to stdout.
func writeOutput(env Env, out string, data []byte) error {
	if out == "" || out == "-" {
		_, err := env.Stdout.Write(data)
		return err
	}
	return atomicfile.Write(out, data, 0o600)
}
