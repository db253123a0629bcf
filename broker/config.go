package broker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/broker/migrate"
	"github.com/secrets-broker/secrets-broker/broker/outdir"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"github.com/secrets-broker/secrets-broker/providers"
)

// MaxConfigLen bounds a config file.
const MaxConfigLen = 1 << 20

// MaxConfigNodes bounds a config's YAML tree before it is built: room for
// 10,000 outputs (about 24 nodes each) within the 1 MiB bound.
const MaxConfigNodes = 1 << 19

// Config is a secrets-broker configuration file (docs/config.md). It is
// decoded strictly: an unknown key is an error naming its line.
type Config struct {
	Vault *VaultConfig `yaml:"vault"`
	// Keys are key specs allowed to open envelope: secrets.
	Keys     []string `yaml:"keys"`
	KeyFiles []string `yaml:"key_files"`
	// OutputRoot is the directory every output path is beneath.
	OutputRoot string `yaml:"output_root"`
	// DirMode is the mode of the directories the broker creates (output_root
	// when missing, parents of outputs, bundle versions); default 0750.
	DirMode string `yaml:"dir_mode"`
	// DirGroup is their group (name or id); default: inherited.
	DirGroup string `yaml:"dir_group"`
	// FileSandbox, when set, is the only directory the template function
	// "file" may read from. Unset, templates cannot read files.
	FileSandbox string `yaml:"file_sandbox"`
	// Secrets maps names to references (see SecretRefHelp), in file order.
	Secrets SecretList `yaml:"secrets"`
	// SecretsFiles are requirements on envelope files, by path: the
	// context every secret read from the file must be sealed with.
	SecretsFiles map[string]SecretsFileConfig `yaml:"secrets_files"`
	Outputs      []Output                     `yaml:"outputs"`
	Exec         *ExecConfig                  `yaml:"exec"`
	// Refresh tunes the daemon (run without --once).
	Refresh *RefreshConfig `yaml:"refresh"`
	// KeyCache tunes the in-memory cache of data keys unwrapped by AWS KMS
	// or Vault Transit.
	KeyCache *KeyCacheConfig `yaml:"key_cache"`
	// Cache keeps what was fetched from Vault sealed on disk, so that a
	// restart reuses leases and certificates instead of minting new ones.
	Cache *CacheConfig `yaml:"cache"`

	// Dir is the directory relative paths are resolved against: the config
	// file's directory, or the working directory.
	Dir string `yaml:"-"`
	// Source names the config in messages.
	Source string `yaml:"-"`
}

// SecretsFileConfig is what the reader requires of one envelope file.
type SecretsFileConfig struct {
	// Context pairs must be in the file's manifest and in every secret
	// read from it (a single envelope's own context).
	Context map[string]string `yaml:"context"`
}

// VaultConfig says how to reach and log in to Vault. Empty fields take the
// VAULT_* environment variables.
type VaultConfig struct {
	Address       string      `yaml:"address"`
	Namespace     string      `yaml:"namespace"`
	CACert        string      `yaml:"ca_cert"`
	CAPath        string      `yaml:"ca_path"`
	ClientCert    string      `yaml:"client_cert"`
	ClientKey     string      `yaml:"client_key"`
	TLSServerName string      `yaml:"tls_server_name"`
	Auth          *AuthConfig `yaml:"auth"`
}

// AuthConfig chooses a Vault auth method.
type AuthConfig struct {
	Method             string `yaml:"method"` // token, approle, kubernetes, jwt
	Mount              string `yaml:"mount"`
	Role               string `yaml:"role"`
	TokenFile          string `yaml:"token_file"`
	RoleIDFile         string `yaml:"role_id_file"`
	SecretIDFile       string `yaml:"secret_id_file"`
	SecretIDWrapped    bool   `yaml:"secret_id_response_wrapped"`
	RemoveSecretIDFile bool   `yaml:"remove_secret_id_file_after_reading"`
	JWTFile            string `yaml:"jwt_file"`
	TokenPath          string `yaml:"service_account_token_file"`

	// Vault Agent's names, accepted as they are.
	MountPath        string `yaml:"mount_path"`
	RoleIDFilePath   string `yaml:"role_id_file_path"`
	SecretIDFilePath string `yaml:"secret_id_file_path"`
	TokenPathAgent   string `yaml:"token_path"`
}

// Output is one file to write.
type Output struct {
	Path   string `yaml:"path"`
	Format string `yaml:"format"` // template, dotenv, json, yaml, raw
	// Template is a template file; TemplateText an inline template.
	Template     string   `yaml:"template"`
	TemplateText string   `yaml:"template_text"`
	Secret       string   `yaml:"secret"`  // raw: the one secret
	Secrets      []string `yaml:"secrets"` // dotenv, json, yaml: which (default all)
	Mode         string   `yaml:"mode"`    // octal, default 0600
	User         string   `yaml:"user"`
	Group        string   `yaml:"group"`
	AllowSymlink bool     `yaml:"allow_symlink"`
	AllowEmpty   bool     `yaml:"allow_empty"`
	// Bundle names a set of outputs in one directory that switch together
	// (a certificate and its key): see outdir.Dir.WriteBundle.
	Bundle string `yaml:"bundle"`
	// Notify tells the app when the daemon changed this file.
	Notify *NotifyConfig `yaml:"notify"`

	// Vault Agent's and consul-template's names, accepted as they are:
	// source (template), contents (template_text), perms (mode).
	Source   string `yaml:"source"`
	Contents string `yaml:"contents"`
	Perms    string `yaml:"perms"`

	line int
}

// NotifyConfig is how the daemon tells an app that a file changed: a signal
// to the process in PIDFile, and/or a command (argv, no shell).
type NotifyConfig struct {
	Signal  string        `yaml:"signal"` // HUP, USR1, USR2, TERM, INT, QUIT
	PIDFile string        `yaml:"pid_file"`
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"` // for Command; default 30s
}

// RefreshConfig tunes the refresh daemon.
type RefreshConfig struct {
	// StaticInterval is how often secrets without a lease (KV) are read
	// again. Default 5m, as Vault Agent.
	StaticInterval time.Duration `yaml:"static_interval"`
	// StaticSecretRenderInterval is Vault Agent's name for StaticInterval.
	StaticSecretRenderInterval time.Duration `yaml:"static_secret_render_interval"`
	// Wait debounces rendering: after a change, wait Min for more changes,
	// but never longer than Max since the first (consul-template's wait).
	Wait struct {
		Min time.Duration `yaml:"min"`
		Max time.Duration `yaml:"max"`
	} `yaml:"wait"`
	// MetricsAddress serves Prometheus metrics and /healthz, e.g.
	// 127.0.0.1:9102. Empty: off.
	MetricsAddress string `yaml:"metrics_address"`
	// CertificateRenewal is the fraction of a PKI certificate's validity
	// after which a fresh one is issued (default 2/3, moved by up to 5% of
	// the validity for each certificate).
	CertificateRenewal float64 `yaml:"certificate_renewal"`
}

// KeyCacheConfig tunes the data-key cache.
type KeyCacheConfig struct {
	// TTL is how long an unwrapped data key is kept (default 5m; 0s turns
	// the cache off). A disabled or revoked KMS key stops opening secrets
	// within it.
	TTL *time.Duration `yaml:"ttl"`
}

// CacheConfig is the restart cache (docs/config.md, "Restart cache").
type CacheConfig struct {
	// Path is the cache directory, e.g. on a memory-backed emptyDir.
	Path string `yaml:"path"`
	// Key is the key spec entries are sealed with: local, local:FP,
	// awskms:ARN or transit:MOUNT/KEY.
	Key string `yaml:"key"`
	// MaxStale, when set, lets a start that cannot reach Vault render KV
	// values from the cache that are at most this old. Leased secrets are
	// never served without Vault's word.
	MaxStale time.Duration `yaml:"max_stale"`
}

// keyCacheTTL is the configured data-key TTL.
func (c *Config) keyCacheTTL() time.Duration {
	if c.KeyCache != nil && c.KeyCache.TTL != nil {
		return *c.KeyCache.TTL
	}
	return providers.DefaultDataKeyTTL
}

// ExecConfig shapes the environment of "secrets-broker exec" and of the
// command "run" supervises (run --exec, or Command here).
type ExecConfig struct {
	// Env maps environment variable names to secret names; by default each
	// secret is passed under its own name.
	Env      map[string]string `yaml:"env"`
	Pristine bool              `yaml:"pristine"`
	Allow    []string          `yaml:"env_allow"`
	Deny     []string          `yaml:"env_deny"`

	// Command, when set, makes "run" start it after the first render and
	// supervise it (as run --exec -- COMMAND does).
	Command []string `yaml:"command"`
	// RestartOnSecretChanges: "always" (default) restarts the command, or
	// sends it ReloadSignal, once per change; "never" leaves it alone.
	RestartOnSecretChanges string `yaml:"restart_on_secret_changes"`
	// ReloadSignal, when set, is sent instead of a restart when a rendered
	// file changes (a changed environment still needs a restart).
	ReloadSignal string `yaml:"reload_signal"`
	// KillSignal (default TERM) and KillTimeout (default 30s): how the
	// command is stopped, before SIGKILL.
	KillSignal  string        `yaml:"kill_signal"`
	KillTimeout time.Duration `yaml:"kill_timeout"`
	// Splay delays each restart or signal by a random time up to it.
	Splay time.Duration `yaml:"splay"`
	// OnChildExit: "exit" (default) ends the broker with the command's
	// status; "restart" starts it again (with backoff).
	OnChildExit string `yaml:"on_child_exit"`
}

// SecretDecl is one declared secret.
type SecretDecl struct {
	Name string
	Ref  SecretRef
	// Context pairs the envelope of an envelope: secret must be sealed with.
	Context map[string]string
	line    int
}

// SecretList keeps declared secrets in file order.
type SecretList []SecretDecl

// UnmarshalYAML reads a mapping of names to references, in order.
func (l *SecretList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: secrets must be a mapping of names to references", n.Line)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || (v.Kind != yaml.ScalarNode && v.Kind != yaml.MappingNode) {
			return fmt.Errorf("line %d: each secret is NAME: REFERENCE, or NAME: {ref: REFERENCE, context: {KEY: VALUE}}", k.Line)
		}
		if seen[k.Value] {
			return fmt.Errorf("line %d: secret %q is declared twice", k.Line, k.Value)
		}
		seen[k.Value] = true
		if err := validSecretName(k.Value); err != nil {
			return fmt.Errorf("line %d: %w", k.Line, err)
		}
		var long struct {
			Ref     string            `yaml:"ref"`
			Context map[string]string `yaml:"context"`
		}
		if v.Kind == yaml.ScalarNode {
			long.Ref = v.Value
		} else if err := decodeStrict(v, &long); err != nil {
			return fmt.Errorf("line %d: secret %q: %w", v.Line, k.Value, err)
		}
		ref, err := ParseSecretRef(long.Ref)
		if err != nil {
			return fmt.Errorf("line %d: secret %q: %w", v.Line, k.Value, err)
		}
		if len(long.Context) > 0 && ref.Scheme != "envelope" {
			return fmt.Errorf("line %d: secret %q: context applies to envelope: secrets only", v.Line, k.Value)
		}
		*l = append(*l, SecretDecl{Name: k.Value, Ref: ref, Context: long.Context, line: k.Line})
	}
	return nil
}

// decodeStrict decodes node into v, refusing keys v does not have.
func decodeStrict(node *yaml.Node, v any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return errors.New(tidyYAMLError(err))
	}
	return nil
}

// secretNameRE is what a secret name looks like; names are at most 128
// bytes long (checked apart: a counted repetition in the expression would
// make a program of some 100 KB, built in every run).
var secretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

func validSecretName(name string) error {
	if len(name) > 128 || !secretNameRE.MatchString(name) {
		return fmt.Errorf("secret name %q must start with a letter or _ and use letters, digits, _ . - (at most 128)", name)
	}
	return nil
}

// Lookup returns the declaration of name.
func (l SecretList) Lookup(name string) (SecretDecl, bool) {
	for _, d := range l {
		if d.Name == name {
			return d, true
		}
	}
	return SecretDecl{}, false
}

// LoadConfig reads and checks a config file.
func LoadConfig(path string) (*Config, error) {
	data, err := readlimit.File(path, MaxConfigLen, "config file "+path)
	if err != nil {
		if fail.KindOf(err) == fail.NotFound {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot read config: %w", err))
		}
		return nil, err
	}
	dir, _ := filepath.Abs(filepath.Dir(path))
	return ParseConfig(data, path, dir)
}

// ConfigSource is where a config comes from: a file (or none), and the
// flags that add to it or override it.
type ConfigSource struct {
	// Path is the config file; empty starts from an empty config
	// (relative paths against the working directory).
	Path string
	// Secrets are --secret NAME=REF declarations.
	Secrets []string
	// Templates are --template SRC:DST[:COMMAND] outputs.
	Templates []string
	// VaultAddress is --vault-addr.
	VaultAddress string
}

// Load reads and checks the config with the flags applied: the one config
// loader of the commands and the daemon (at start and on every reload).
func (s ConfigSource) Load() (*Config, error) {
	var cfg *Config
	if s.Path != "" {
		c, err := LoadConfig(s.Path)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else {
		wd, _ := os.Getwd()
		cfg = &Config{Dir: wd, Source: "(flags)"}
	}
	if err := cfg.AddSecretFlags(s.Secrets); err != nil {
		return nil, err
	}
	cfg.SetVaultAddress(s.VaultAddress)
	if err := cfg.AddTemplateFlags(s.Templates); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ParseConfig decodes config text (YAML or JSON) strictly and checks it.
func ParseConfig(data []byte, source, dir string) (*Config, error) {
	if len(data) > MaxConfigLen {
		return nil, readlimit.TooLarge("config "+source, MaxConfigLen)
	}
	if err := readlimit.CheckYAML(data, MaxConfigNodes, "config "+source); err != nil {
		if hcl := hclConfig(data, source); hcl != nil {
			return nil, hcl
		}
		return nil, err
	}
	c := &Config{Dir: dir, Source: source}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		if hcl := hclConfig(data, source); hcl != nil {
			return nil, hcl
		}
		return nil, fail.Mark(fail.Usage, fmt.Errorf("config %s: %s", source, tidyYAMLError(err)))
	}
	// Record output lines for messages.
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) == nil && len(doc.Content) == 1 {
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "outputs" {
				for j, o := range root.Content[i+1].Content {
					if j < len(c.Outputs) {
						c.Outputs[j].line = o.Line
					}
				}
			}
		}
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	return c, nil
}

// acceptOtherNames folds the Vault Agent and consul-template names a config
// may use (source, contents, perms; mount_path, role_id_file_path,
// secret_id_file_path, token_path; static_secret_render_interval) into
// this config's own; a setting given under both names is an error.
func (c *Config) acceptOtherNames(add func(string, ...any)) {
	fold := func(where string, ours *string, oursName string, theirs string, theirsName string) {
		if theirs == "" {
			return
		}
		if *ours != "" && *ours != theirs {
			add("%s: %s and %s are the same setting; give one", where, oursName, theirsName)
			return
		}
		*ours = theirs
	}
	if c.Vault != nil && c.Vault.Auth != nil {
		a := c.Vault.Auth
		fold("vault.auth", &a.Mount, "mount", strings.TrimPrefix(a.MountPath, "auth/"), "mount_path")
		fold("vault.auth", &a.RoleIDFile, "role_id_file", a.RoleIDFilePath, "role_id_file_path")
		fold("vault.auth", &a.SecretIDFile, "secret_id_file", a.SecretIDFilePath, "secret_id_file_path")
		fold("vault.auth", &a.TokenPath, "service_account_token_file", a.TokenPathAgent, "token_path")
		a.MountPath, a.RoleIDFilePath, a.SecretIDFilePath, a.TokenPathAgent = "", "", "", ""
	}
	if r := c.Refresh; r != nil && r.StaticSecretRenderInterval != 0 {
		if r.StaticInterval != 0 && r.StaticInterval != r.StaticSecretRenderInterval {
			add("refresh: static_interval and static_secret_render_interval are the same setting; give one")
		}
		r.StaticInterval, r.StaticSecretRenderInterval = r.StaticSecretRenderInterval, 0
	}
	for i := range c.Outputs {
		o := &c.Outputs[i]
		where := fmt.Sprintf("output %q", o.Path)
		fold(where, &o.Template, "template", o.Source, "source")
		fold(where, &o.TemplateText, "template_text", o.Contents, "contents")
		fold(where, &o.Mode, "mode", o.Perms, "perms")
		o.Source, o.Contents, o.Perms = "", "", ""
	}
}

// hclConfig explains a config that is HCL: a Vault Agent or consul-template
// config, which migrate converts. nil when data is not HCL.
func hclConfig(data []byte, source string) error {
	from := migrate.Detect(data)
	if from == "" {
		return nil
	}
	if from == migrate.Oversized {
		_, err := migrate.Convert(data, from, source)
		return fail.Mark(fail.Format, fmt.Errorf("config %s is HCL, not YAML, and cannot be read: %w", source, err))
	}
	return fail.Mark(fail.Usage, fmt.Errorf("config %s is HCL, not YAML: it looks like a %s config. Convert it with: secrets-broker migrate %s %s > broker.yaml", source, from, from, source))
}

func tidyYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	// The decoder's own list of errors goes on one line; an error of ours
	// (a secret reference and its help) keeps its lines.
	if list, ok := strings.CutPrefix(msg, "unmarshal errors:\n  "); ok {
		msg = strings.ReplaceAll(list, "\n  ", "; ")
	}
	msg = explainUnknownKeys(msg)
	msg = strings.ReplaceAll(msg, " in type broker.", " in ")
	return msg
}

// Formats of outputs.
const (
	FormatTemplate = "template"
	FormatDotenv   = "dotenv"
	FormatRaw      = "raw"
)

// Check validates the config without contacting anything.
func (c *Config) Check() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	c.acceptOtherNames(add)
	if c.Vault != nil && c.Vault.Auth != nil {
		a := c.Vault.Auth
		switch a.Method {
		case "token", "":
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
		default:
			add("vault.auth: method %q is not token, approle, kubernetes or jwt", a.Method)
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
		if !filepath.IsLocal(o.Path) {
			add("%s: path must be relative and stay beneath output_root (no .., no absolute path)", where)
		}
		if prev, dup := paths[filepath.Clean(o.Path)]; dup {
			add("%s: path is also written by output %d", where, prev)
		}
		paths[filepath.Clean(o.Path)] = i
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
		case FormatDotenv, string(FormatJSON), string(FormatYAML):
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
				if _, ok := parseSignal(n.Signal); !ok {
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
			dir := filepath.Dir(filepath.Clean(o.Path))
			if prev, ok := bundleDirs[o.Bundle]; ok && prev != dir {
				add("%s: every output of bundle %q must be in one directory (%s, not %s)", where, o.Bundle, prev, dir)
			}
			bundleDirs[o.Bundle] = dir
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
	}
	if c.KeyCache != nil && c.KeyCache.TTL != nil && *c.KeyCache.TTL < 0 {
		add("key_cache.ttl must not be negative (0s turns the cache off)")
	}
	if _, err := c.DirPerms(); err != nil {
		add("%v", err)
	}
	if len(c.Outputs) > 0 && c.OutputRoot == "" {
		add("output_root is required when there are outputs: every output path is resolved beneath it")
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
			if _, ok := parseSignal(sig); sig != "" && !ok {
				add("exec.%s %q is not one of %s", key, sig, notifySignalNames)
			}
		}
		if e.KillTimeout < 0 || e.Splay < 0 {
			add("exec.kill_timeout and exec.splay must not be negative")
		}
		for env, s := range c.Exec.Env {
			if !envNameRE.MatchString(env) {
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

// parseSignal reads a notify signal name: HUP or SIGHUP, any case. It
// reports false for a name this platform has no such signal for.
func parseSignal(name string) (syscall.Signal, bool) {
	sig, ok := notifySignals[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
	return sig, ok
}

// bundleRE is what a bundle name looks like; at most 64 bytes long,
// checked apart.
var bundleRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

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
		gid, err := lookupGroup(c.DirGroup)
		if err != nil {
			return perms, fmt.Errorf("dir_group %q: %w", c.DirGroup, err)
		}
		perms.SetGroup, perms.GID = true, gid
	}
	return perms, nil
}

// secretsFileContext is the context the config requires of the envelope
// file at the resolved path p.
func (c *Config) secretsFileContext(p string) map[string]string {
	for path, fc := range c.SecretsFiles {
		if filepath.Clean(c.Resolve(path)) == filepath.Clean(p) {
			return fc.Context
		}
	}
	return nil
}

// Resolve makes a path from the config absolute, relative to its directory.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Dir, p)
}

// AddTemplateFlags adds consul-template-style --template SRC:DST[:COMMAND]
// outputs: the template file SRC rendered to DST, and COMMAND (split on
// spaces, run without a shell) as its notify command. Without output_root
// in the config, the first DST's directory becomes it; every DST must be
// beneath it.
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
		root := c.Resolve(c.OutputRoot)
		rel, err := filepath.Rel(root, dst)
		if err != nil || !filepath.IsLocal(rel) {
			return fail.Mark(fail.Usage, fmt.Errorf("--template %q: %s is not beneath the output root %s; every destination must be (set output_root in a config to choose it)", f, dst, root))
		}
		o := Output{Path: rel, Template: src, Format: FormatTemplate}
		if len(parts) == 3 && strings.TrimSpace(parts[2]) != "" {
			o.Notify = &NotifyConfig{Command: strings.Fields(parts[2])}
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
		c.Vault = &VaultConfig{}
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
		c.Secrets = append(c.Secrets, SecretDecl{Name: name, Ref: r})
	}
	return nil
}
