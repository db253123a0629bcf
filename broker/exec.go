package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/supervisor"
	"github.com/secrets-broker/secrets-broker/internal/credenv"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/redact"
)

// ExecOptions shape "secrets-broker exec".
type ExecOptions struct {
	Command []string
	// Pristine starts the child from an empty environment (plus Allow).
	Pristine bool
	// Allow and Deny are glob patterns (path.Match) of inherited variables
	// to keep or drop. Deny wins.
	Allow, Deny []string
	// PassBrokerCredentials lets the broker's own VAULT_TOKEN, AWS
	// credentials and local key path reach the child; by default they don't.
	PassBrokerCredentials bool
	// GitHubActions prints ::add-mask:: for every value, and every line of
	// multi-line values, before anything else.
	GitHubActions bool
	// GitHubEnv, when set, is a file ($GITHUB_ENV) to append the secrets to
	// with the heredoc syntax and a random delimiter.
	GitHubEnv string
	// Only, when set, limits what is fetched, passed, masked and exported
	// to these variables (each must be one exec would pass).
	Only []string
	// GitLabDotenv, when set, is a dotenv report artifact to write (0600).
	GitLabDotenv string
	// RedactOutput passes the child's stdout and stderr through a filter that
	// replaces every value of at least redact.MinLen bytes, and its encoded
	// forms (redact.Forms), with [redacted].
	RedactOutput   bool
	BaseEnv        []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// NoChild does only the CI steps (masks, env files) and runs nothing.
	NoChild bool
	// Timeout bounds retrying an unreachable or sealed Vault or a
	// throttling KMS (zero: one attempt).
	Timeout time.Duration
}

// ExitError carries the child's exit status through to the process.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("command exited with status %d", e.Code) }

// ExecEnv maps environment variable names to declared secrets: the config's
// exec.env, or every declared secret under its own name. With only, just
// those variables, each of which must be one of them.
func (b *Broker) ExecEnv(only ...string) (map[string]string, error) {
	wanted := map[string]bool{}
	for _, n := range only {
		wanted[n] = true
	}
	keep := func(n string) bool { return len(only) == 0 || wanted[n] }
	out := map[string]string{}
	if b.cfg.Exec != nil && len(b.cfg.Exec.Env) > 0 {
		for k, v := range b.cfg.Exec.Env {
			if keep(k) {
				out[k] = v
			}
		}
	} else {
		for _, d := range b.cfg.Secrets {
			if !keep(d.Name) {
				continue
			}
			if !config.ValidEnvName(d.Name) {
				return nil, fail.Mark(fail.Usage, fmt.Errorf("secret %q is not a valid environment variable name; map it with exec.env in the config", d.Name))
			}
			out[d.Name] = d.Name
		}
	}
	for _, n := range only {
		if _, ok := out[n]; !ok {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("--only %s: no secret is passed under that name; declare it (--secret %s=REF) or map it in the config's exec.env", n, n))
		}
	}
	if len(out) == 0 {
		return nil, fail.Mark(fail.Usage, errors.New("no secrets declared: use --secret NAME=REF or a config with secrets"))
	}
	return out, nil
}

// Exec fetches every secret and runs the command with them in its
// environment (never on its command line), forwarding signals. It returns
// an *ExitError with the child's status when the child fails. If any secret
// is unavailable, the command is not run.
func (b *Broker) Exec(ctx context.Context, opts ExecOptions) error {
	envMap, err := b.ExecEnv(opts.Only...)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(envMap))
	for _, s := range envMap {
		names = append(names, s)
	}
	sort.Strings(names)
	res, err := b.FetchUntil(ctx, names, nil, nil, opts.Timeout, true)
	if err != nil {
		return fmt.Errorf("not running the command: %w", err)
	}
	vars, values := EnvValues(envMap, res.Values)
	if opts.GitHubActions {
		for _, v := range values {
			for _, m := range GitHubMasks(v) {
				fmt.Fprintf(opts.Stdout, "::add-mask::%s\n", m)
			}
		}
	}
	if opts.GitHubEnv != "" {
		if err := appendGitHubEnv(opts.GitHubEnv, vars, values); err != nil {
			return err
		}
	}
	if opts.GitLabDotenv != "" {
		var buf bytes.Buffer
		for i, k := range vars {
			if strings.ContainsAny(values[i], "\r\n") {
				return fail.Mark(fail.Usage, fmt.Errorf("secret for %s is multi-line; GitLab dotenv reports cannot hold multi-line values", k))
			}
			fmt.Fprintf(&buf, "%s=%s\n", k, values[i])
		}
		if err := writeFile0600(opts.GitLabDotenv, buf.Bytes()); err != nil {
			return err
		}
	}
	if opts.NoChild {
		return nil
	}
	if len(opts.Command) == 0 {
		return fail.Mark(fail.Usage, errors.New("no command given: secrets-broker exec [flags] -- COMMAND [ARGS...]"))
	}
	if opts.RedactOutput {
		for i, v := range values {
			if redact.TooShort(v) {
				b.log.Warn(fmt.Sprintf("%s is shorter than %d bytes, too short to redact without wrecking the output; it is not redacted", vars[i], redact.MinLen), "variable", vars[i])
			}
		}
	}
	env := b.ChildEnv(opts, vars, values)
	return runChild(ctx, opts, env, values)
}

// EnvValues lists the variables of envMap in order and their values.
func EnvValues(envMap map[string]string, values map[string]string) (vars, vals []string) {
	vars = make([]string, 0, len(envMap))
	for k := range envMap {
		vars = append(vars, k)
	}
	sort.Strings(vars)
	vals = make([]string, 0, len(vars))
	for _, k := range vars {
		vals = append(vals, values[envMap[k]])
	}
	return vars, vals
}

// needsVault reports whether any of the named secrets comes from Vault.
func needsVault(b *Broker, names []string) bool {
	for _, tok := range b.tokensOf(b.WithCredentials(names)) {
		if t := b.cfg.Tokens[tok]; t != nil && t.VaultIdentity != "" {
			return true
		}
	}
	for _, n := range b.WithCredentials(names) {
		if d, ok := b.Declared(n); ok && d.Ref.Scheme == "vault" {
			return true
		}
	}
	return false
}

// ChildEnv is the environment of a command the broker runs: opts.BaseEnv
// less the broker's credentials (unless opts.PassBrokerCredentials) and
// what the exec rules (flags and the config's exec section) leave out, with
// vars set to values.
func (b *Broker) ChildEnv(opts ExecOptions, vars, values []string) []string {
	pristine, allow, deny := opts.Pristine, opts.Allow, opts.Deny
	if c := b.cfg.Exec; c != nil {
		pristine = pristine || c.Pristine
		allow = append(append([]string{}, allow...), c.Allow...)
		deny = append(append([]string{}, deny...), c.Deny...)
	}
	base := opts.BaseEnv
	if !opts.PassBrokerCredentials {
		base = credenv.Strip(base)
	}
	match := func(pats []string, name string) bool {
		for _, p := range pats {
			if ok, _ := path.Match(p, name); ok {
				return true
			}
		}
		return false
	}
	var env []string
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if match(deny, name) {
			continue
		}
		if pristine || len(allow) > 0 {
			if !match(allow, name) {
				continue
			}
		}
		env = append(env, kv)
	}
	for i, k := range vars {
		env = append(env, k+"="+values[i])
	}
	return env
}

func runChild(ctx context.Context, opts ExecOptions, env []string, values []string) error {
	reaper, stopReaper := supervisor.StartReaper(ctx)
	defer stopReaper()
	cfg := supervisor.Config{Command: opts.Command, Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, Forward: supervisor.Signals(true), Reaper: reaper}
	var outR, errR *redact.Writer
	if opts.RedactOutput {
		outR, errR = redact.NewWriter(opts.Stdout, values), redact.NewWriter(opts.Stderr, values)
		cfg.Stdout, cfg.Stderr = outR, errR
	}
	st, err := supervisor.Run(ctx, cfg, env, nil)
	if outR != nil {
		outR.Flush()
		errR.Flush()
	}
	if err != nil {
		return fail.Mark(fail.Usage, err)
	}
	if st.Code != 0 {
		return &ExitError{Code: st.Code}
	}
	return nil
}

// GitHubMasks returns what to mask for one value: the value and each of its
// lines (CVE-2021-32074: a multi-line value masked whole leaks line by
// line), escaped as workflow-command data.
func GitHubMasks(v string) []string {
	esc := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		s = strings.TrimRight(s, "\r")
		if strings.TrimSpace(s) != "" && !seen[s] {
			seen[s] = true
			out = append(out, esc.Replace(s))
		}
	}
	if !strings.ContainsAny(v, "\r\n") {
		add(v)
		return out
	}
	for _, line := range strings.Split(v, "\n") {
		add(line)
	}
	return out
}

func appendGitHubEnv(file string, vars, values []string) error {
	var buf bytes.Buffer
	for i, k := range vars {
		var rnd [16]byte
		rand.Read(rnd[:])
		delim := "ghadelimiter_" + hex.EncodeToString(rnd[:])
		fmt.Fprintf(&buf, "%s<<%s\n%s\n%s\n", k, delim, values[i], delim)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("cannot append to GITHUB_ENV file: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("cannot append to GITHUB_ENV file: %w", err)
	}
	return f.Close()
}

func writeFile0600(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", p, err)
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	_, err = f.Write(data)
	return err
}
