package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/secrets-broker/secrets-broker/broker/migrate"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"go.yaml.in/yaml/v3"
)

// Load reads and checks a config file.
func Load(path string) (*Config, error) {
	data, err := readlimit.File(path, MaxConfigLen, "config file "+path)
	if err != nil {
		if fail.KindOf(err) == fail.NotFound {
			return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot read config: %w", err))
		}
		return nil, err
	}
	dir, _ := filepath.Abs(filepath.Dir(path))
	return Parse(data, path, dir)
}

// Source is where a config comes from: a file (or none), and the
// flags that add to it or override it.
type Source struct {
	// Path is the config file; empty starts from an empty config
	// (relative paths against the working directory).
	Path string
	// Secrets are --secret NAME=REF declarations.
	Secrets []string
	// Templates are --template SRC:DST[:COMMAND] outputs.
	Templates []string
	// VaultAddress is --vault-addr.
	VaultAddress string
	// EnvFiles are exec --env-file secrets files: every entry becomes a
	// secret of its own name (an environment variable name).
	EnvFiles []string
	// Inline is the config text itself, used when Path is empty
	// ($SECRETS_BROKER_CONFIG_YAML, as the Kubernetes injector sets it);
	// relative paths in it are against the working directory.
	Inline string
}

// Load reads and checks the config with the flags applied: the one config
// loader of the commands and the daemon (at start and on every reload).
func (s Source) Load() (*Config, error) {
	var cfg *Config
	if s.Path != "" {
		c, err := Load(s.Path)
		if err != nil {
			return nil, err
		}
		cfg = c
	} else if s.Inline != "" {
		wd, _ := os.Getwd()
		c, err := Parse([]byte(s.Inline), "$SECRETS_BROKER_CONFIG_YAML", wd)
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
	for _, f := range s.EnvFiles {
		if err := cfg.AddEnvFile(f); err != nil {
			return nil, err
		}
	}
	cfg.SetVaultAddress(s.VaultAddress)
	if err := cfg.AddTemplateFlags(s.Templates); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes config text (YAML or JSON) strictly and checks it.
func Parse(data []byte, source, dir string) (*Config, error) {
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
	msg = strings.ReplaceAll(msg, " in type config.", " in ")
	return msg
}
