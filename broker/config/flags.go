package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// AddTemplateFlags adds consul-template-style --template SRC:DST[:COMMAND]
// outputs: the template file SRC rendered to DST, and COMMAND (split on
// spaces, run without a shell) as its notify command. Without output_root
// in the config, the first DST's directory becomes it; a DST not beneath
// it gets its own directory as its root.
func (c *Config) AddTemplateFlags(flags []string) error {
	wd, _ := os.Getwd()
	for _, f := range flags {
		parts := strings.SplitN(f, ":", 3)
		if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
			return fail.Mark(fail.Usage, fmt.Errorf("--template %q is not SRC:DST[:COMMAND], e.g. --template app.tmpl:/run/app/app.conf", f))
		}
		src, dst := parts[0], parts[1]
		if !filepath.IsAbs(src) {
			src = filepath.Join(wd, src)
		}
		if !filepath.IsAbs(dst) {
			dst = filepath.Join(wd, dst)
		}
		if c.OutputRoot == "" {
			c.OutputRoot = filepath.Dir(dst)
		}
		o := Output{Template: src, Format: FormatTemplate}
		rel, err := filepath.Rel(c.Resolve(c.OutputRoot), dst)
		if err == nil && filepath.IsLocal(rel) {
			o.Path = rel
		} else { // beneath a directory of its own (consul-template writes anywhere)
			o.Root, o.Path = filepath.Dir(dst), filepath.Base(dst)
		}
		if len(parts) == 3 && strings.TrimSpace(parts[2]) != "" {
			o.Notify = &Notify{Command: strings.Fields(parts[2])}
		}
		c.Outputs = append(c.Outputs, o)
	}
	if len(flags) > 0 {
		return c.Check()
	}
	return nil
}

// SetVaultAddress sets vault.address (--vault-addr), which wins over the
// config and VAULT_ADDR.
func (c *Config) SetVaultAddress(addr string) {
	if addr == "" {
		return
	}
	if c.Vault == nil {
		c.Vault = &Vault{}
	}
	c.Vault.Address = addr
}

// AddSecretFlags adds --secret NAME=REF declarations.
func (c *Config) AddSecretFlags(flags []string) error {
	for _, f := range flags {
		name, ref, ok := strings.Cut(f, "=")
		if !ok {
			return fail.Mark(fail.Usage, fmt.Errorf("--secret %q is not NAME=REF.\n%s", f, SecretRefHelp))
		}
		if err := validSecretName(name); err != nil {
			return fail.Mark(fail.Usage, fmt.Errorf("--secret %q: %w", f, err))
		}
		if _, dup := c.Secrets.Lookup(name); dup {
			return fail.Mark(fail.Usage, fmt.Errorf("--secret %q: secret %q is already declared", f, name))
		}
		r, err := ParseSecretRef(ref)
		if err != nil {
			return err
		}
		if _, ok := c.Tokens[r.Token]; r.Scheme == "token" && !ok {
			return fail.Mark(fail.Usage, fmt.Errorf("--secret %q: %s names no entry of tokens: in the config; give the config that declares it (-c FILE)", f, ref))
		}
		c.Secrets = append(c.Secrets, SecretDecl{Name: name, Ref: r})
		// A config's exec.env names what exec passes; a secret declared on
		// the command line is meant for exec too, under its own name, so
		// it joins that map rather than being left out of it unseen.
		if c.Exec != nil && len(c.Exec.Env) > 0 {
			if _, taken := c.Exec.Env[name]; taken {
				return fail.Mark(fail.Usage, fmt.Errorf("--secret %q: the config's exec.env already sets %s; rename the secret or drop that entry", f, name))
			}
			if !ValidEnvName(name) {
				return fail.Mark(fail.Usage, fmt.Errorf("--secret %q: %q is not an environment variable name (letters, digits, _), and the config's exec.env passes secrets to exec by name", f, name))
			}
			c.Exec.Env[name] = name
		}
	}
	return nil
}

// AddEnvFile declares every entry of the secrets file path (names are
// public: read without a key) as a secret of the same name, as SOPS'
// exec-env does. Each name must be an environment variable name; the
// values are opened, and checked, when the secrets are fetched.
func (c *Config) AddEnvFile(path string) error {
	data, err := readlimit.File(path, envelope.MaxFileLen, "--env-file "+path)
	if err != nil {
		if k := fail.KindOf(err); k == fail.NotFound || k == fail.Internal {
			err = fail.Mark(fail.Usage, err)
		}
		return err
	}
	f, err := envelope.ParseFile(data, path)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	var flags []string
	for _, e := range f.Entries {
		if !ValidEnvName(e.Name) {
			return fail.Mark(fail.Usage, fmt.Errorf("--env-file %s: entry %q is not an environment variable name (letters, digits, _); rename it, or map it in a config's exec.env", path, e.Name))
		}
		flags = append(flags, e.Name+"=envelope:"+abs+"#"+e.Name)
	}
	return c.AddSecretFlags(flags)
}
