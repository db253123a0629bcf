package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secrets-broker/secrets-broker/broker/crypt"
	"github.com/secrets-broker/secrets-broker/broker/keys"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

func newKeygen(env Env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create a local key file (mode 0600); never overwrites one",
		Long: `Create a local key file, mode 0600 in a 0700 directory, and print its key id.
Without --out the file is the default local key: $` + local.EnvKeyFile + `, else
~/.config/secrets-broker/local.key. An existing file is never overwritten.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				p, err := local.DefaultPath()
				if err != nil {
					return err
				}
				out = p
			}
			k, err := local.New(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "secrets-broker: wrote local key %s\n", out)
			fmt.Fprintln(env.Stdout, k.KeyID())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "key file to create")
	return cmd
}

// refuseReplacing refuses to write encrypt's --out over a file that exists
// unless --force says so: sealing a file of new secrets onto an existing
// secrets file would silently drop the entries it held.
func refuseReplacing(out string, force, merge bool) error {
	if out == "" || out == "-" || force || merge {
		return nil
	}
	if _, err := os.Lstat(out); err != nil {
		return nil
	}
	return usageErr("--out %s exists: encrypt writes a new file, so its entries would be lost; nothing was written. Pass --merge to add these entries to it (same names replaced, the others kept byte for byte), --force to replace it, or --out another file", out)
}

func newEncrypt(env Env) *cobra.Command {
	var (
		kf                          keyFlags
		name, in, out, file, format string
		contextPairs                []string
		allowEmpty, force, merge    bool
	)
	cmd := &cobra.Command{
		Use:   "encrypt",
		Short: "Seal one secret (stdin or --in) or a whole file of secrets (--file)",
		Long: `Seal one secret read from standard input or --in into an envelope ("sbe1:..."),
or, with --file, a plaintext YAML/JSON mapping of names to values into a
secrets file. Every secret gets its own data key, bound to its name and context.
Secrets are never taken as command-line arguments.

The value is sealed byte for byte: 'echo' adds a newline, 'printf %s' does not.`,
		Example: `  printf %s "$DB_PASSWORD" | secrets-broker encrypt --name db_password > db_password.sbe
  secrets-broker encrypt --file secrets.yaml --out secrets.enc.yaml --key awskms:arn:aws:kms:...`,
		Args: noSecretArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bctx, err := parseContext(contextPairs)
			if err != nil {
				return err
			}
			ofmt, err := crypt.ParseFormat(format)
			if err != nil {
				return err
			}
			if file != "" && (name != "" || in != "") {
				return usageErr("--file seals a whole file; it does not go with --name or --in")
			}
			if file == "" && name == "" {
				return usageErr("--name is required: it names the secret and is bound to it (or use --file for a file of secrets)")
			}
			if force && merge {
				return usageErr("--merge and --force do not go together: merge keeps the file's other entries, force drops them")
			}
			if merge && (file == "" || out == "" || out == "-") {
				return usageErr("--merge adds the entries of --file to the secrets file --out")
			}
			if err := refuseReplacing(out, force, merge); err != nil {
				return err
			}
			if file != "" {
				data, path, err := readInput(cmd.Context(), env, file, crypt.MaxInputLen)
				if err != nil {
					return err
				}
				values, err := crypt.ParsePlainFile(data, path)
				clear(data)
				if err != nil {
					return err
				}
				if merge {
					defer func() {
						for _, v := range values {
							clear(v.Value)
						}
					}()
					t, err := openTarget(cmd.Context(), out, kf, contextPairs, env.Stderr)
					if err != nil {
						return err
					}
					changes := make([]envelope.Change, len(values))
					for i, v := range values {
						changes[i] = envelope.Change{Name: v.Name, Value: v.Value}
					}
					return t.apply(cmd.Context(), changes)
				}
				cfg, rule, err := ruleKeys(out, kf, env.Stderr)
				if err != nil {
					return err
				}
				if rule != nil {
					if bctx, err = rule.CheckContext(out, nil, false, bctx); err != nil {
						return err
					}
				}
				keys, err := cfg.ForSealing(cmd.Context())
				if err != nil {
					return err
				}
				f, err := envelope.SealFile(cmd.Context(), values, bctx, keys...)
				for _, v := range values {
					clear(v.Value)
				}
				if err != nil {
					return err
				}
				if format == "" && strings.EqualFold(filepath.Ext(out), ".json") {
					ofmt = crypt.FormatJSON
				}
				sealed, err := crypt.MarshalFile(f, ofmt)
				if err != nil {
					return err
				}
				return writeOutput(env, out, sealed)
			}
			data, _, err := readInput(cmd.Context(), env, in, envelope.MaxPlaintextLen)
			if err != nil {
				return err
			}
			defer clear(data)
			if len(data) == 0 && !allowEmpty {
				return usageErr("the input is empty, so there is nothing to seal (was the variable you piped unset?); pass --allow-empty to seal an empty secret")
			}
			keys, err := kf.keys().ForSealing(cmd.Context())
			if err != nil {
				return err
			}
			e, err := envelope.Seal(cmd.Context(), data, envelope.Binding{Name: name, Context: bctx}, keys...)
			if err != nil {
				return err
			}
			return writeOutput(env, out, []byte(e.String()+"\n"))
		},
	}
	kf.register(cmd, "key spec to wrap the data key with; the first seals")
	f := cmd.Flags()
	f.StringVar(&name, "name", "", "the secret's name (bound to the ciphertext)")
	f.StringArrayVar(&contextPairs, "context", nil, "KEY=VALUE bound to the secret, visible in audit logs (repeatable; never a secret)")
	f.StringVar(&in, "in", "", "read the secret from this file instead of standard input")
	f.StringVar(&file, "file", "", "seal a plaintext YAML/JSON file of name: value pairs into a secrets file")
	f.StringVar(&out, "out", "", "write here (mode 0600, atomically) instead of standard output")
	f.StringVar(&format, "format", "yaml", "secrets file format: yaml or json")
	f.BoolVar(&allowEmpty, "allow-empty", false, "seal an empty secret (refused by default: an empty input is usually a mistake)")
	f.BoolVar(&force, "force", false, "replace an existing --out file (its entries are dropped; refused by default)")
	f.BoolVar(&merge, "merge", false, "add the entries of --file to the existing --out file (same names replaced, others kept byte for byte)")
	return cmd
}

func newDecrypt(env Env) *cobra.Command {
	var (
		kf                           keyFlags
		name, in, out, entry, format string
		contextPairs                 []string
	)
	cmd := &cobra.Command{
		Use:   "decrypt",
		Short: "Open an envelope or a secrets file with the configured keys",
		Long: `Open an envelope or a secrets file read from --in or standard input. Only the
keys configured with --key, --key-file, $` + keys.Env + ` and the default local
key are used: the file never chooses what to connect to. A secrets file's
integrity manifest is checked first. Output files are written mode 0600.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			want, err := parseContext(contextPairs)
			if err != nil {
				return err
			}
			ofmt, err := crypt.ParseFormat(format)
			if err != nil {
				return err
			}
			data, path, err := readInput(cmd.Context(), env, in, crypt.MaxInputLen)
			if err != nil {
				return err
			}
			sealed, err := crypt.ParseSealed(data, path)
			if err != nil {
				return err
			}
			keys, err := kf.keys().ForOpeningNow(cmd.Context())
			if err != nil {
				if ids := sealed.KeyIDs(); len(ids) > 0 && fail.KindOf(err) == fail.KeyUnavailable {
					// Which keys would open it (unauthenticated: shown,
					// never used).
					return fmt.Errorf("%w. %s is wrapped for: %s", err, path, strings.Join(ids, ", "))
				}
				return err
			}
			if sealed.Single != nil {
				if entry != "" {
					return usageErr("--entry is for secrets files; %s holds one envelope", path)
				}
				pt, err := sealed.Single.Open(cmd.Context(), envelope.Expect{Name: name, Context: want}, keys)
				if err != nil {
					return err
				}
				defer clear(pt)
				return writeOutput(env, out, pt)
			}
			if name != "" {
				return usageErr("--name is for single envelopes; use --entry NAME for one secret of a file")
			}
			file := envelope.FileExpect{Context: want}
			if entry != "" {
				pt, err := sealed.File.Open(cmd.Context(), envelope.Expect{Name: entry}, file, keys)
				if err != nil {
					return err
				}
				defer clear(pt)
				return writeOutput(env, out, pt)
			}
			values, err := sealed.File.OpenAll(cmd.Context(), file, keys, 8)
			if err != nil {
				return err
			}
			defer func() {
				for _, v := range values {
					clear(v.Value)
				}
			}()
			plain, err := crypt.MarshalPlain(values, ofmt)
			if err != nil {
				return err
			}
			defer clear(plain)
			return writeOutput(env, out, plain)
		},
	}
	kf.register(cmd, "key spec allowed to open")
	f := cmd.Flags()
	f.StringVar(&in, "in", "", "read the envelope or secrets file from this file instead of standard input")
	f.StringVar(&out, "out", "", "write the plaintext here (mode 0600, atomically) instead of standard output")
	f.StringVar(&name, "name", "", "require the envelope to be sealed for this secret name")
	f.StringArrayVar(&contextPairs, "context", nil, "require KEY=VALUE in the envelope's context, or in a secrets file's manifest and every entry (repeatable)")
	f.StringVar(&entry, "entry", "", "print only this secret of a secrets file, as raw bytes")
	f.StringVar(&format, "format", "yaml", "output of a whole secrets file: yaml or json")
	return cmd
}

type rewriteFlags struct {
	in, out, format string
	inPlace, dryRun bool
	before          *crypt.Sealed
}

func (r *rewriteFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.in, "in", "", "the envelope or secrets file (required)")
	f.StringVar(&r.out, "out", "", "write the result here instead of standard output")
	f.BoolVarP(&r.inPlace, "in-place", "w", false, "replace --in atomically")
	f.StringVar(&r.format, "format", "", "secrets file format: yaml or json (default: the input's file extension)")
	f.BoolVar(&r.dryRun, "dry-run", false, "print which entries and key ids would change (never a value) and write nothing")
}

func (r *rewriteFlags) read(ctx context.Context, env Env) (*crypt.Sealed, error) {
	if r.in == "" {
		return nil, usageErr("--in is required")
	}
	if r.inPlace && r.out != "" {
		return nil, usageErr("--in-place and --out do not go together")
	}
	data, path, err := readInput(ctx, env, r.in, crypt.MaxInputLen)
	if err != nil {
		return nil, err
	}
	s, err := crypt.ParseSealed(data, path)
	r.before = s
	return s, err
}

func (r *rewriteFlags) write(env Env, s *crypt.Sealed) error {
	if r.dryRun {
		crypt.DescribeChange(r.before, s, env.Stdout)
		return nil
	}
	format := r.format
	if format == "" {
		format = "yaml"
		if strings.EqualFold(filepath.Ext(r.in), ".json") {
			format = "json"
		}
	}
	ofmt, err := crypt.ParseFormat(format)
	if err != nil {
		return err
	}
	out := r.out
	if r.inPlace {
		out = r.in
	}
	data, err := s.Marshal(ofmt)
	if err != nil {
		return err
	}
	return writeOutput(env, out, data)
}

func newRewrap(env Env) *cobra.Command {
	var (
		kf      keyFlags
		rw      rewriteFlags
		add, rm []string
	)
	cmd := &cobra.Command{
		Use:   "rewrap",
		Short: "Add or remove keys of an envelope or secrets file without touching its ciphertext",
		Args:  cobra.NoArgs,
		Long: `Add or remove the keys every data key of an envelope or secrets file is wrapped
for, without touching any ciphertext. With neither --add-key nor --remove-key,
the keys become those of the file's creation rule (.secrets-broker.yaml), as
SOPS' updatekeys does. --dry-run prints what would change.`,
		Example: `  secrets-broker rewrap --in secrets.enc.yaml -w --add-key awskms:arn:aws:kms:eu-west-1:...
  secrets-broker rewrap --in secrets.enc.yaml -w --remove-key local:3f2a...
  secrets-broker rewrap --in prod/secrets.enc.yaml -w --dry-run   # the rule's keys`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rule *crypt.Match
			if len(add) == 0 && len(rm) == 0 {
				var err error
				if rw.in != "" && rw.in != "-" {
					if rule, err = crypt.FindRule(rw.in); err != nil {
						return err
					}
				}
				if rule == nil {
					return usageErr("nothing to do: give --add-key or --remove-key, or a creation rule (%s) for %s to bring its keys in line with", crypt.RulesFile, rw.in)
				}
			}
			s, err := rw.read(cmd.Context(), env)
			if err != nil {
				return err
			}
			openKeys, err := kf.keys().ForOpeningNow(cmd.Context())
			if err != nil {
				return err
			}
			var addKeys []envelope.KeyWrapper
			if rule != nil {
				// SOPS' updatekeys: the keys become the rule's.
				want, err := keys.Config{Specs: rule.Keys, KeyFiles: kf.files}.ForSealing(cmd.Context())
				if err != nil {
					return err
				}
				addKeys, rm = crypt.KeysToMatch(s, want)
				fmt.Fprintf(env.Stderr, "secrets-broker: keys from %s: adding %d, removing %d\n", rule.Source, len(addKeys), len(rm))
			} else if len(add) > 0 {
				addKeys, err = keys.Config{Specs: add, KeyFiles: kf.files}.ForSealing(cmd.Context())
				if err != nil {
					return err
				}
			}
			out, err := s.Rewrap(cmd.Context(), openKeys, addKeys, rm)
			if err != nil {
				return err
			}
			return rw.write(env, out)
		},
	}
	kf.register(cmd, "key spec allowed to open")
	rw.register(cmd)
	cmd.Flags().StringArrayVar(&add, "add-key", nil, "key spec to add (repeatable)")
	cmd.Flags().StringArrayVar(&rm, "remove-key", nil, "key id to remove (repeatable)")
	return cmd
}

func newRotate(env Env) *cobra.Command {
	var (
		kf     keyFlags
		rw     rewriteFlags
		sealTo []string
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Reseal every secret under new data keys (same names and contexts)",
		Long: `Open every secret and seal it again under a fresh data key. The new data keys
are wrapped for the keys you configure: --seal-key, else --key/--key-file, else
$` + keys.Env + `. Never for the key ids the file lists: those are not
authenticated, and anyone who can write the file could add a stranger's key.
With no key configured, rotate refuses and prints the file's key ids for you to
check and pass explicitly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := rw.read(cmd.Context(), env)
			if err != nil {
				return err
			}
			open, err := kf.keys().ForOpeningNow(cmd.Context())
			if err != nil {
				return err
			}
			sealKeys := keys.Config{Specs: sealTo, KeyFiles: kf.files}
			if len(sealTo) == 0 {
				sealKeys = kf.keys()
			}
			if !sealKeys.Explicit() {
				ids := s.KeyIDs()
				for i, id := range ids {
					ids[i] = "--seal-key " + strconv.Quote(id)
				}
				return usageErr("no sealing key configured: rotate seals only for keys you name (--seal-key, --key, --key-file or $%s), never for the key ids a file lists. %s lists: %s", keys.Env, rw.in, strings.Join(ids, " "))
			}
			seal, err := sealKeys.ForSealing(cmd.Context())
			if err != nil {
				return err
			}
			out, err := s.Rotate(cmd.Context(), open, seal)
			if err != nil {
				return err
			}
			return rw.write(env, out)
		},
	}
	kf.register(cmd, "key spec allowed to open")
	rw.register(cmd)
	cmd.Flags().StringArrayVar(&sealTo, "seal-key", nil, "key spec to wrap the new data keys with (repeatable)")
	return cmd
}

func newInspect(env Env) *cobra.Command {
	var (
		kf             keyFlags
		in             string
		asJSON, verify bool
	)
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Show names, key ids, contexts and created times (never values)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, path, err := readInput(cmd.Context(), env, in, crypt.MaxInputLen)
			if err != nil {
				return err
			}
			s, err := crypt.ParseSealed(data, path)
			if err != nil {
				return err
			}
			var keys []envelope.KeyWrapper
			if verify {
				if keys, err = kf.keys().ForOpeningNow(cmd.Context()); err != nil {
					return err
				}
			}
			sum, err := s.Inspect(cmd.Context(), keys)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			crypt.FormatSummary(sum, env.Stdout)
			return nil
		},
	}
	kf.register(cmd, "key spec allowed to open (with --verify)")
	cmd.Flags().StringVar(&in, "in", "", "the envelope or secrets file (default standard input)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&verify, "verify", false, "also check a secrets file's integrity manifest with the configured keys")
	return cmd
}
