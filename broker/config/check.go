package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"

	"github.com/secrets-broker/secrets-broker/broker/format"
	"github.com/secrets-broker/secrets-broker/broker/outdir"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
)

// Formats of outputs.
const (
	FormatTemplate = "template"
	FormatDotenv   = format.Dotenv
	FormatJSON     = format.JSON
	FormatYAML     = format.YAML
	FormatRaw      = "raw"
)

// Check validates the config without contacting anything.
func (c *Config) Check() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	c.acceptOtherNames(add)
	c.checkTokens(add)
	if c.Vault != nil && c.Vault.Auth != nil {
		a := c.Vault.Auth
		switch a.Method {
		case "token":
		case "":
			add("vault.auth: method is required (token, approle, kubernetes, jwt, cert, aws, userpass or ldap); without vault.auth the broker uses VAULT_TOKEN")
		case "approle":
			if a.RoleIDFile == "" || a.SecretIDFile == "" {
				add("vault.auth: approle needs role_id_file and secret_id_file")
			}
		case "kubernetes":
			if a.Role == "" {
				add("vault.auth: kubernetes needs role")
			}
		case "jwt":
			if a.Role == "" || a.JWTFile == "" {
				add("vault.auth: jwt needs role and jwt_file")
			}
		case "cert":
			if (a.ClientCert == "") != (a.ClientKey == "") {
				add("vault.auth: cert needs client_cert and client_key together")
			} else if a.ClientCert == "" && (c.Vault.ClientCert == "" || c.Vault.ClientKey == "") && (os.Getenv("VAULT_CLIENT_CERT") == "" || os.Getenv("VAULT_CLIENT_KEY") == "") {
				add("vault.auth: cert needs a client certificate: set client_cert and client_key (here or under vault:), or VAULT_CLIENT_CERT and VAULT_CLIENT_KEY")
			}
		case "aws":
			if a.Type != "" && a.Type != "iam" {
				add("vault.auth: aws type %q is not supported: only iam is (a signed sts:GetCallerIdentity request works on EC2, ECS, EKS and Lambda alike); set type: iam", a.Type)
			}
			if a.AccessKey != "" || a.SecretKey != "" || a.SessionToken != "" {
				add("vault.auth: aws credentials (access_key, secret_key, session_token) do not belong in the broker's config: give the workload an IAM role, or set AWS_ACCESS_KEY_ID and friends, or a shared credentials file")
			}
		case "userpass", "ldap":
			if a.Username == "" || a.PasswordFile == "" {
				add("vault.auth: %s needs username and password_file (the password is never in the config)", a.Method)
			}
		default:
			add("vault.auth: method %q is not token, approle, kubernetes, jwt, cert, aws, userpass or ldap", a.Method)
		}
		if a.Method != "userpass" && a.Method != "ldap" && (a.Username != "" || a.PasswordFile != "") {
			add("vault.auth: username and password_file are for methods userpass and ldap")
		}
		if a.Method != "cert" && (a.Name != "" || a.ClientCert != "" || a.ClientKey != "") {
			add("vault.auth: name, client_cert and client_key are for method cert")
		}
		if a.Method != "aws" && (a.Type != "" || a.Region != "" || a.HeaderValue != "") {
			add("vault.auth: type, region and header_value are for method aws")
		}
	}
	if k := c.Cache; k != nil {
		if k.Path == "" || k.Key == "" {
			add("cache: path and key are required (e.g. path: /run/secrets-cache, key: local)")
		}
		if k.MaxStale < 0 {
			add("cache: max_stale %s is negative", k.MaxStale)
		}
	}
	if r := c.Refresh; r != nil && (r.CertificateRenewal < 0 || r.CertificateRenewal >= 1) {
		add("refresh: certificate_renewal %v is not a fraction between 0 and 1 (e.g. 0.67)", r.CertificateRenewal)
	}
	paths := map[string]int{}
	bundleDirs := map[string]string{}
	bundleWaits := map[string]Wait{}
	for i := range c.Outputs {
		o := &c.Outputs[i]
		where := fmt.Sprintf("outputs[%d]", i)
		if o.line > 0 {
			where = fmt.Sprintf("line %d: output %q", o.line, o.Path)
		}
		if o.Path == "" {
			add("%s: path is required", where)
			continue
		}
		if (o.LeftDelimiter == "") != (o.RightDelimiter == "") {
			add("%s: left_delimiter and right_delimiter go together", where)
		}
		if !filepath.IsLocal(o.Path) {
			add("%s: path must be relative and stay beneath output_root or its root (no .., no absolute path)", where)
		}
		target := filepath.Join(c.RootOf(*o), filepath.Clean(o.Path))
		if prev, dup := paths[target]; dup {
			add("%s: path is also written by output %d", where, prev)
		}
		paths[target] = i
		if w := o.Wait; w != nil && (w.Min <= 0 || w.Max < 0 || (w.Max > 0 && w.Max < w.Min)) {
			add("%s: wait needs min > 0 and max >= min (max 0: four times min, as consul-template)", where)
		}
		if o.Format == "" {
			switch {
			case o.Template != "" || o.TemplateText != "":
				o.Format = FormatTemplate
			case o.Secret != "":
				o.Format = FormatRaw
			default:
				o.Format = FormatDotenv
			}
		}
		switch o.Format {
		case FormatTemplate:
			if (o.Template == "") == (o.TemplateText == "") {
				add("%s: a template output needs exactly one of template or template_text", where)
			}
		case FormatRaw:
			if o.Secret == "" {
				add("%s: a raw output needs secret", where)
			}
		case FormatDotenv, FormatJSON, FormatYAML:
		default:
			add("%s: format %q is not template, dotenv, json, yaml or raw", where, o.Format)
		}
		for _, s := range append(append([]string{}, o.Secrets...), o.Secret) {
			if s == "" {
				continue
			}
			if _, ok := c.Secrets.Lookup(s); !ok {
				add("%s: secret %q is not declared under secrets", where, s)
			}
		}
		if _, err := o.FileMode(); err != nil {
			add("%s: %v", where, err)
		}
		if n := o.Notify; n != nil {
			if n.Signal == "" && len(n.Command) == 0 {
				add("output %q: notify needs signal (with pid_file) or command", o.Path)
			}
			if n.Signal != "" {
				if _, ok := ParseSignal(n.Signal); !ok {
					add("output %q: notify signal %q is not one of %s", o.Path, n.Signal, notifySignalNames)
				}
				if n.PIDFile == "" {
					add("output %q: notify signal needs pid_file", o.Path)
				}
			}
		}
		if o.Bundle != "" {
			if len(o.Bundle) > 64 || !bundleRE.MatchString(o.Bundle) {
				add("%s: bundle %q must be letters, digits, _ or - (at most 64)", where, o.Bundle)
			}
			if o.AllowSymlink {
				add("%s: bundle outputs are symlinks already; allow_symlink does not apply", where)
			}
			dir := filepath.Dir(filepath.Join(c.RootOf(*o), filepath.Clean(o.Path)))
			if prev, ok := bundleDirs[o.Bundle]; ok && prev != dir {
				add("%s: every output of bundle %q must be in one directory (%s, not %s)", where, o.Bundle, prev, dir)
			}
			bundleDirs[o.Bundle] = dir
			if prev, ok := bundleWaits[o.Bundle]; ok && prev != o.Wait.or() {
				add("%s: every output of bundle %q must have the same wait (a bundle switches at once)", where, o.Bundle)
			}
			bundleWaits[o.Bundle] = o.Wait.or()
		}
	}
	if r := c.Refresh; r != nil {
		if r.StaticInterval < 0 || r.Wait.Min < 0 || r.Wait.Max < 0 || (r.Wait.Max > 0 && r.Wait.Max < r.Wait.Min) {
			add("refresh: intervals must be positive and wait.max >= wait.min")
		}
		if r.MetricsAddress != "" {
			if _, _, err := net.SplitHostPort(r.MetricsAddress); err != nil {
				add("refresh.metrics_address %q is not HOST:PORT", r.MetricsAddress)
			}
		}
		if (r.MetricsTLSCert == "") != (r.MetricsTLSKey == "") {
			add("refresh: metrics_tls_cert and metrics_tls_key go together (a PEM certificate and its key)")
		}
		if r.MetricsRequestsPerSecond < 0 || r.MetricsMaxConnections < 0 {
			add("refresh: metrics_requests_per_second and metrics_max_connections must be positive (unset takes the defaults, 20 and 16)")
		}
	}
	if c.KeyCache != nil && c.KeyCache.TTL != nil && *c.KeyCache.TTL < 0 {
		add("key_cache.ttl must not be negative (0s turns the cache off)")
	}
	if _, err := c.DirPerms(); err != nil {
		add("%v", err)
	}
	if c.OutputRoot == "" && slices.ContainsFunc(c.Outputs, func(o Output) bool { return o.Root == "" }) {
		add("output_root is required when an output has no root of its own: every output path is resolved beneath one")
	}
	if c.Exec != nil {
		e := c.Exec
		switch e.RestartOnSecretChanges {
		case "", "always", "never":
		default:
			add("exec.restart_on_secret_changes %q is not always or never", e.RestartOnSecretChanges)
		}
		switch e.OnChildExit {
		case "", "exit", "restart":
		default:
			add("exec.on_child_exit %q is not exit or restart", e.OnChildExit)
		}
		for key, sig := range map[string]string{"reload_signal": e.ReloadSignal, "kill_signal": e.KillSignal} {
			if _, ok := ParseSignal(sig); sig != "" && !ok {
				add("exec.%s %q is not one of %s", key, sig, notifySignalNames)
			}
		}
		if e.KillTimeout < 0 || e.Splay < 0 {
			add("exec.kill_timeout and exec.splay must not be negative")
		}
		for env, s := range c.Exec.Env {
			if !ValidEnvName(env) {
				add("exec.env: %q is not a valid environment variable name", env)
			}
			if _, ok := c.Secrets.Lookup(s); !ok {
				add("exec.env: %s refers to secret %q, which is not declared", env, s)
			}
		}
	}
	envelopeFiles := map[string]bool{}
	for _, d := range c.Secrets {
		if d.Ref.Scheme == "envelope" {
			envelopeFiles[filepath.Clean(c.Resolve(d.Ref.Path))] = true
			if err := (envelope.Binding{Name: d.Ref.Entry}).Validate(); d.Ref.Entry != "" && err != nil {
				add("line %d: secret %q: entry: %v", d.line, d.Name, err)
			}
			if err := (envelope.Binding{Name: "x", Context: d.Context}).Validate(); err != nil {
				add("line %d: secret %q: context: %v", d.line, d.Name, err)
			}
		}
	}
	for p, fc := range c.SecretsFiles {
		if !envelopeFiles[filepath.Clean(c.Resolve(p))] {
			add("secrets_files: %q is not the file of any envelope: secret (check the path)", p)
		}
		if err := (envelope.Binding{Name: "x", Context: fc.Context}).Validate(); err != nil {
			add("secrets_files: %q: context: %v", p, err)
		}
	}
	if len(errs) > 0 {
		return fail.Mark(fail.Usage, fmt.Errorf("config %s: %w", c.Source, errors.Join(errs...)))
	}
	return nil
}

// bundleRE is what a bundle name looks like; at most 64 bytes long,
// checked apart.
var bundleRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// envNameRE is what a shell takes as a variable name (ValidEnvName).
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// FileMode parses the output's mode (default 0600). Modes that let the
// group or others write the file (0777, 0666, 0620, ...) are refused: a
// rendered secret is read by the app, never written by it.
func (o Output) FileMode() (fs.FileMode, error) {
	if o.Mode == "" {
		return 0o600, nil
	}
	m, err := strconv.ParseUint(o.Mode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("mode %q is not an octal permission like 0640", o.Mode)
	}
	if m&0o022 != 0 {
		return 0, fmt.Errorf("mode %q lets the group or others change the secret; use 0600, or 0640 to share it with a group", o.Mode)
	}
	return fs.FileMode(m), nil
}

// DirPerms are the mode and group of the directories the broker creates.
func (c *Config) DirPerms() (outdir.Perms, error) {
	perms := outdir.Perms{Mode: outdir.DefaultMode}
	if c.DirMode != "" {
		m, err := strconv.ParseUint(c.DirMode, 8, 32)
		if err != nil || m > 0o777 {
			return perms, fmt.Errorf("dir_mode %q is not an octal permission like 0750", c.DirMode)
		}
		if m&0o700 != 0o700 || m&0o022 != 0 {
			return perms, fmt.Errorf("dir_mode %q must let the owner read, write and enter (0700) and must not let the group or others write; use 0750 to share with a group", c.DirMode)
		}
		perms.Mode = fs.FileMode(m)
	}
	if c.DirGroup != "" && !fileowner.Supported {
		return perms, errors.New("dir_group is not supported on this platform (Windows): remove it")
	}
	if c.DirGroup != "" {
		gid, err := fileowner.LookupGroup(c.DirGroup)
		if err != nil {
			return perms, fmt.Errorf("dir_group %q: %w", c.DirGroup, err)
		}
		perms.SetGroup, perms.GID = true, gid
	}
	return perms, nil
}

// SecretsFileContext is the context the config requires of the envelope
// file at the resolved path p.
func (c *Config) SecretsFileContext(p string) map[string]string {
	for path, fc := range c.SecretsFiles {
		if filepath.Clean(c.Resolve(path)) == filepath.Clean(p) {
			return fc.Context
		}
	}
	return nil
}

// RootOf is the directory output o's path is beneath: its own root, or
// output_root, resolved against the config's directory.
func (c *Config) RootOf(o Output) string {
	if o.Root != "" {
		return filepath.Clean(c.Resolve(o.Root))
	}
	return filepath.Clean(c.Resolve(c.OutputRoot))
}

// Roots are the distinct output roots the outputs use, in first use order.
func (c *Config) Roots() []string {
	var roots []string
	for _, o := range c.Outputs {
		if r := c.RootOf(o); !slices.Contains(roots, r) {
			roots = append(roots, r)
		}
	}
	return roots
}

// or is w, or the zero Wait when w is nil.
func (w *Wait) or() Wait {
	if w == nil {
		return Wait{}
	}
	return *w
}

// Resolve makes a path from the config absolute, relative to its directory.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// ValidEnvName reports whether name can be an environment variable's name.
func ValidEnvName(name string) bool { return envNameRE.MatchString(name) }
