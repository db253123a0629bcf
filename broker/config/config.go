// Package config owns the broker's configuration: the YAML types, the one
// loader (strict decoding, bounded input, HCL configs recognised), the
// checks that run before anything is contacted, and secret references.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/secrets-broker/secrets-broker/providers"
	"go.yaml.in/yaml/v3"
)

// MaxConfigLen bounds a config file.
const MaxConfigLen = 1 << 20

// MaxConfigNodes bounds a config's YAML tree before it is built: room for
// 10,000 outputs (about 24 nodes each) within the 1 MiB bound.
const MaxConfigNodes = 1 << 19

// Config is a secrets-broker configuration file (docs/config.md). It is
// decoded strictly: an unknown key is an error naming its line.
type Config struct {
	Vault *Vault `yaml:"vault"`
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
	SecretsFiles map[string]SecretsFile `yaml:"secrets_files"`
	Outputs      []Output               `yaml:"outputs"`
	// Tokens are access tokens the broker gets from OAuth 2.0 token
	// endpoints and keeps fresh, by name (docs/tokens.md).
	Tokens map[string]*Token `yaml:"tokens"`
	Exec   *Exec             `yaml:"exec"`
	// Refresh tunes the daemon (run without --once).
	Refresh *Refresh `yaml:"refresh"`
	// KeyCache tunes the in-memory cache of data keys unwrapped by AWS KMS
	// or Vault Transit.
	KeyCache *KeyCache `yaml:"key_cache"`
	// Cache keeps what was fetched from Vault sealed on disk, so that a
	// restart reuses leases and certificates instead of minting new ones.
	Cache *Cache `yaml:"cache"`

	// Dir is the directory relative paths are resolved against: the config
	// file's directory, or the working directory.
	Dir string `yaml:"-"`
	// Source names the config in messages.
	Source string `yaml:"-"`
}

// SecretsFile is what the reader requires of one envelope file.
type SecretsFile struct {
	// Context pairs must be in the file's manifest and in every secret
	// read from it (a single envelope's own context).
	Context map[string]string `yaml:"context"`
}

// Vault says how to reach and log in to Vault. Empty fields take the
// VAULT_* environment variables.
type Vault struct {
	Address       string `yaml:"address"`
	Namespace     string `yaml:"namespace"`
	CACert        string `yaml:"ca_cert"`
	CAPath        string `yaml:"ca_path"`
	ClientCert    string `yaml:"client_cert"`
	ClientKey     string `yaml:"client_key"`
	TLSServerName string `yaml:"tls_server_name"`
	// InsecureHTTP allows an http:// address that is not loopback.
	InsecureHTTP bool  `yaml:"insecure_http"`
	Auth         *Auth `yaml:"auth"`
}

// Auth chooses a Vault auth method.
type Auth struct {
	Method             string `yaml:"method"` // token, approle, kubernetes, jwt, cert, aws, userpass, ldap
	Mount              string `yaml:"mount"`
	Role               string `yaml:"role"`
	TokenFile          string `yaml:"token_file"`
	RoleIDFile         string `yaml:"role_id_file"`
	SecretIDFile       string `yaml:"secret_id_file"`
	SecretIDWrapped    bool   `yaml:"secret_id_response_wrapped"`
	RemoveSecretIDFile bool   `yaml:"remove_secret_id_file_after_reading"`
	JWTFile            string `yaml:"jwt_file"`
	TokenPath          string `yaml:"service_account_token_file"`
	// cert: the certificate role (Vault Agent's name) and, when not the
	// vault section's, the client certificate and key files.
	Name       string `yaml:"name"`
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"`
	// userpass and ldap: the username and a file holding the password.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// aws: the IAM type only, the STS region and the server ID header.
	Type        string `yaml:"type"`
	Region      string `yaml:"region"`
	HeaderValue string `yaml:"header_value"`
	// Vault Agent's aws keys for credentials in its config: refused
	// (the standard AWS chain gives them instead).
	AccessKey    string `yaml:"access_key"`
	SecretKey    string `yaml:"secret_key"`
	SessionToken string `yaml:"session_token"`

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
	// LeftDelimiter and RightDelimiter replace a template's {{ and }}
	// (consul-template's names), for templates that produce {{ }} text.
	LeftDelimiter  string `yaml:"left_delimiter"`
	RightDelimiter string `yaml:"right_delimiter"`
	// ErrorOnMissingKey: false renders a missing map key as empty, as
	// consul-template's error_on_missing_key = false does; unset or true
	// fails the output (the strict default).
	ErrorOnMissingKey *bool `yaml:"error_on_missing_key"`
	// Root, when set, is the directory this output's path is beneath
	// instead of output_root (absolute, or relative to the config's
	// directory): outputs in several system directories keep the rooted
	// write model without output_root: /.
	Root string `yaml:"root"`
	// Wait holds this output's writes (and its notify) until its secrets
	// have been quiet for Min, at most Max after the first change
	// (consul-template's per-template wait). It applies on top of
	// refresh.wait, which debounces every pass.
	Wait *Wait `yaml:"wait"`
	// Notify tells the app when the daemon changed this file.
	Notify *Notify `yaml:"notify"`

	// Vault Agent's and consul-template's names, accepted as they are:
	// source (template), contents (template_text), perms (mode).
	Source   string `yaml:"source"`
	Contents string `yaml:"contents"`
	Perms    string `yaml:"perms"`

	line int
}

// Wait is a debounce: Min after the last change, never longer than Max
// after the first (consul-template's wait). Written {min: 2s, max: 10s},
// or as consul-template writes it, "2s" or "2s:10s".
type Wait struct {
	Min time.Duration `yaml:"min"`
	Max time.Duration `yaml:"max"`
}

// UnmarshalYAML reads the mapping or consul-template's "MIN[:MAX]".
func (w *Wait) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		lo, hi, hasMax := strings.Cut(n.Value, ":")
		var err error
		if w.Min, err = time.ParseDuration(strings.TrimSpace(lo)); err == nil && hasMax {
			w.Max, err = time.ParseDuration(strings.TrimSpace(hi))
		}
		if err != nil {
			return fmt.Errorf("line %d: wait %q is not {min: 2s, max: 10s}, \"2s\" or \"2s:10s\"", n.Line, n.Value)
		}
		return nil
	}
	type plain Wait
	return n.Decode((*plain)(w))
}

// Notify is how the daemon tells an app that a file changed: a signal
// to the process in PIDFile, and/or a command (argv, no shell).
type Notify struct {
	Signal  string        `yaml:"signal"` // HUP, USR1, USR2, TERM, INT, QUIT
	PIDFile string        `yaml:"pid_file"`
	Command []string      `yaml:"command"`
	Timeout time.Duration `yaml:"timeout"` // for Command; default 30s
}

// Refresh tunes the refresh daemon.
type Refresh struct {
	// StaticInterval is how often secrets without a lease (KV) are read
	// again. Default 5m, as Vault Agent.
	StaticInterval time.Duration `yaml:"static_interval"`
	// StaticSecretRenderInterval is Vault Agent's name for StaticInterval.
	StaticSecretRenderInterval time.Duration `yaml:"static_secret_render_interval"`
	// Wait debounces rendering: after a change, wait Min for more changes,
	// but never longer than Max since the first (consul-template's wait).
	Wait Wait `yaml:"wait"`
	// MetricsAddress serves Prometheus metrics and /healthz, e.g.
	// 127.0.0.1:9102. Empty: off.
	MetricsAddress string `yaml:"metrics_address"`
	// MetricsTLSCert and MetricsTLSKey serve the listener over HTTPS (read
	// again when they change).
	MetricsTLSCert string `yaml:"metrics_tls_cert"`
	MetricsTLSKey  string `yaml:"metrics_tls_key"`
	// MetricsRequestsPerSecond and MetricsMaxConnections bound what the
	// listener serves (defaults in broker/health).
	MetricsRequestsPerSecond float64 `yaml:"metrics_requests_per_second"`
	MetricsMaxConnections    int     `yaml:"metrics_max_connections"`
	// CertificateRenewal is the fraction of a PKI certificate's validity
	// after which a fresh one is issued (default 2/3, moved by up to 5% of
	// the validity for each certificate).
	CertificateRenewal float64 `yaml:"certificate_renewal"`
}

// KeyCache tunes the data-key cache.
type KeyCache struct {
	// TTL is how long an unwrapped data key is kept (default 5m; 0s turns
	// the cache off). A disabled or revoked KMS key stops opening secrets
	// within it.
	TTL *time.Duration `yaml:"ttl"`
}

// Cache is the restart cache (docs/config.md, "Restart cache").
type Cache struct {
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

// KeyCacheTTL is the configured data-key TTL.
func (c *Config) KeyCacheTTL() time.Duration {
	if c.KeyCache != nil && c.KeyCache.TTL != nil {
		return *c.KeyCache.TTL
	}
	return providers.DefaultDataKeyTTL
}

// Exec shapes the environment of "secrets-broker exec" and of the
// command "run" supervises (run --exec, or Command here).
type Exec struct {
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

// ValidSecretName reports whether name can be a declared secret's name.
func ValidSecretName(name string) bool { return validSecretName(name) == nil }
