// Package keys owns turning the keys a user configured (key specs such as
// local, awskms:ARN, transit:MOUNT/KEY, and local key files) into the key
// wrappers envelopes are sealed and opened with: the only keys an envelope
// may use, whatever it names.
package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers"
	"github.com/secrets-broker/secrets-broker/providers/awskms"
	"github.com/secrets-broker/secrets-broker/providers/local"
	"github.com/secrets-broker/secrets-broker/providers/transit"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// Env names the environment variable with comma-separated key specs,
// used when no --key is given.
const Env = "SECRETS_BROKER_KEYS"

// SpecHelp documents the key specs users type.
const SpecHelp = `Key specs:
  local                 the default local key file ($SECRETS_BROKER_LOCAL_KEY or
                        ~/.config/secrets-broker/local.key; make it with keygen)
  local:FINGERPRINT     a local key loaded with --key-file
  awskms:ARN            an AWS KMS key (standard AWS credentials and region
                        settings; AWS_ENDPOINT_URL_KMS overrides the endpoint)
  transit:MOUNT/KEY     a Vault Transit key (VAULT_ADDR, VAULT_TOKEN, ...)`

// Config is the user's key configuration: the only keys an envelope may be
// opened or sealed with. An envelope never chooses what to connect to.
type Config struct {
	// Specs are key specs (see SpecHelp), in order; the first seals.
	Specs []string
	// KeyFiles are local key files to load.
	KeyFiles []string
	// Vault returns the Vault client for transit keys; nil means "from the
	// VAULT_* environment".
	Vault func(ctx context.Context) (*api.Client, error)
	// Cache, when set, keeps unwrapped data keys of remote key services.
	Cache *providers.DataKeyCache
	// Log, when set, receives a warning for every retried KMS call.
	Log *slog.Logger
}

func (k Config) specs() []string {
	if len(k.Specs) > 0 {
		return k.Specs
	}
	if env := os.Getenv(Env); env != "" {
		var out []string
		for _, s := range strings.Split(env, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// NamedSpecs are the key specs the user named: the flags', else
// $SECRETS_BROKER_KEYS's.
func (k Config) NamedSpecs() []string { return k.specs() }

// Explicit reports whether the user named keys: specs (flags, config or
// $SECRETS_BROKER_KEYS) or key files. Then only those keys are used.
func (k Config) Explicit() bool {
	return len(k.specs()) > 0 || len(k.KeyFiles) > 0
}

// ForSealing returns the wrappers to seal with: the specs given (or in
// $SECRETS_BROKER_KEYS), every --key-file, or else the default local key.
func (k Config) ForSealing(ctx context.Context) ([]envelope.KeyWrapper, error) {
	files, err := k.loadFiles()
	if err != nil {
		return nil, err
	}
	specs := k.specs()
	if len(specs) == 0 && len(files) > 0 {
		out := make([]envelope.KeyWrapper, len(files))
		for i, f := range files {
			out[i] = f
		}
		return out, nil
	}
	if len(specs) == 0 {
		specs = []string{"local"}
	}
	return k.resolve(ctx, specs, files)
}

// ForOpening returns the keys allowed to open: exactly the specs and key
// files the user named, or, when none are named, the default local key if
// its file exists.
func (k Config) ForOpening(ctx context.Context) ([]envelope.KeyWrapper, error) {
	files, err := k.loadFiles()
	if err != nil {
		return nil, err
	}
	specs := k.specs()
	out, err := k.resolve(ctx, specs, files)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		out = appendUnique(out, f)
	}
	if k.Explicit() {
		return out, nil
	}
	if path, err := local.DefaultPath(); err == nil {
		if _, statErr := os.Stat(path); statErr == nil {
			def, err := local.Load(path)
			if err != nil {
				return nil, err
			}
			out = appendUnique(out, def)
		}
	}
	return out, nil
}

// ForOpeningNow is ForOpening for a command that is about to open
// something: no key at all is an error that says where the default key
// was looked for and how to create it (exit 3), instead of a later
// "configured: none".
func (k Config) ForOpeningNow(ctx context.Context) ([]envelope.KeyWrapper, error) {
	out, err := k.ForOpening(ctx)
	if err != nil || len(out) > 0 {
		return out, err
	}
	path, err := local.DefaultPath()
	if err != nil {
		return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("no configured key to open with: %w; or name keys with --key, --key-file or $%s", err, Env))
	}
	by := "the default path"
	if os.Getenv(local.EnvKeyFile) != "" {
		by = "$" + local.EnvKeyFile
	}
	return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("no configured key to open with: the default local key file %s (named by %s) does not exist. Create it with 'secrets-broker keygen --out %s', or name the keys the file is sealed for with --key, --key-file or $%s", path, by, path, Env))
}

func appendUnique(ws []envelope.KeyWrapper, w envelope.KeyWrapper) []envelope.KeyWrapper {
	for _, x := range ws {
		if x.KeyID() == w.KeyID() {
			return ws
		}
	}
	return append(ws, w)
}

func (k Config) loadFiles() ([]*local.Key, error) {
	var out []*local.Key
	for _, p := range k.KeyFiles {
		key, err := local.Load(p)
		if err != nil {
			return nil, err
		}
		out = append(out, key)
	}
	return out, nil
}

func (k Config) resolve(ctx context.Context, specs []string, files []*local.Key) ([]envelope.KeyWrapper, error) {
	var out []envelope.KeyWrapper
	var vault *api.Client
	for _, spec := range specs {
		var w envelope.KeyWrapper
		switch {
		case spec == "local":
			path, err := local.DefaultPath()
			if err != nil {
				return nil, fail.Mark(fail.KeyUnavailable, err)
			}
			key, err := local.Load(path)
			if err != nil {
				return nil, err
			}
			w = key
		case strings.HasPrefix(spec, local.KeyIDPrefix):
			for _, f := range files {
				if f.KeyID() == spec {
					w = f
				}
			}
			if w == nil {
				if path, err := local.DefaultPath(); err == nil {
					if def, err := local.Load(path); err == nil && def.KeyID() == spec {
						w = def
					}
				}
			}
			if w == nil {
				return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("local key %s is not loaded: pass its file with --key-file", spec))
			}
		case strings.HasPrefix(spec, awskms.KeyIDPrefix):
			key, err := awskms.New(ctx, strings.TrimPrefix(spec, awskms.KeyIDPrefix), awskms.LogRetries(k.Log))
			if err != nil {
				return nil, err
			}
			w = key
		case strings.HasPrefix(spec, transit.KeyIDPrefix):
			if vault == nil {
				c, err := k.vaultClient(ctx)
				if err != nil {
					return nil, err
				}
				vault = c
			}
			key, err := transit.New(vault, strings.TrimPrefix(spec, transit.KeyIDPrefix))
			if err != nil {
				return nil, err
			}
			w = key
		default:
			return nil, fail.Mark(fail.Usage, fmt.Errorf("key %q is not a key spec.\n%s", spec, SpecHelp))
		}
		if k.Cache != nil && !strings.HasPrefix(w.KeyID(), local.KeyIDPrefix) {
			w = k.Cache.Wrap(w)
		}
		out = appendUnique(out, w)
	}
	return out, nil
}

func (k Config) vaultClient(ctx context.Context) (*api.Client, error) {
	if k.Vault != nil {
		return k.Vault(ctx)
	}
	c, err := api.NewClient(api.DefaultConfig())
	if err != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("cannot configure the Vault client for transit keys: %w", err))
	}
	if err := vault.CheckTransport(c.Address(), false, os.Getenv(api.EnvVaultSkipVerify), nil); err != nil {
		return nil, err
	}
	if c.Token() == "" {
		return nil, fail.Mark(fail.Usage, errors.New("transit keys need a Vault token: set VAULT_TOKEN"))
	}
	return c, nil
}
