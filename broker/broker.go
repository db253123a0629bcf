package broker

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/keys"
	"github.com/secrets-broker/secrets-broker/broker/vaultcache"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/providers"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// Broker fetches the secrets a config declares and renders its outputs.
type Broker struct {
	cfg   *config.Config
	cache *providers.DataKeyCache
	// onLogin is told of every Vault login (SetLoginObserver).
	onLogin func(error)

	vault *vault.Client
	// sharedVault means vault belongs to someone else (the daemon, across
	// config reloads) and Close leaves it open.
	sharedVault bool
	keys        []envelope.KeyWrapper
	files       map[string]*envelope.File
	// restart is the restart cache (cfg.Cache), opened on first use.
	restart *vaultcache.Store
	// notRemembering is set once the Vault login names someone other
	// than the cache was opened for: nothing more is written to it.
	notRemembering atomic.Bool
	// kept is what was last written to the restart cache, by request.
	keptMu sync.Mutex
	kept   map[string]keptEntry
	// decls indexes cfg.Secrets by name.
	decls map[string]config.SecretDecl
	// credentials names, by token entry, the declared credentials its
	// requests are made with.
	credentials map[string][]string
	// tokenClients are the token entries' clients, made on first use.
	tokenMu      sync.Mutex
	tokenClients map[string]tokenClient
	log          *slog.Logger
	// nameKey keys the names logs and metrics give computed Vault paths
	// (ShownRequest); random, and shared by a daemon's generations.
	nameKey [32]byte
}

// New makes a broker for cfg. Nothing is contacted until needed.
func New(cfg *config.Config) *Broker {
	decls := make(map[string]config.SecretDecl, len(cfg.Secrets))
	for _, d := range cfg.Secrets {
		decls[d.Name] = d
	}
	tokenDecls(cfg, decls)
	credentials := map[string][]string{}
	for _, c := range cfg.TokenCredentials() {
		credentials[c.Token] = append(credentials[c.Token], c.Decl.Name)
	}
	b := &Broker{cfg: cfg, cache: providers.NewDataKeyCache(10000, cfg.KeyCacheTTL()), files: map[string]*envelope.File{}, decls: decls,
		credentials: credentials, tokenClients: map[string]tokenClient{}, log: slog.New(slog.DiscardHandler)}
	rand.Read(b.nameKey[:])
	return b
}

// ShownRequest is how logs, metrics and /readyz name the Vault request of
// r: its key, or, for a path a template computed (it may be built from a
// secret's value), "computed:" and a keyed hash of the key. The hash names
// the same path the same way while the broker runs and tells nothing about
// it to someone who guesses the value, as a plain hash would.
func (b *Broker) ShownRequest(r vault.Ref) string {
	if !r.Computed {
		return r.RequestKey()
	}
	m := hmac.New(sha256.New, b.nameKey[:])
	m.Write([]byte(r.RequestKey()))
	return "computed:" + hex.EncodeToString(m.Sum(nil)[:6])
}

// SetLoginObserver has f told of every Vault login attempt and its result
// (the daemon counts them).
func (b *Broker) SetLoginObserver(f func(error)) { b.onLogin = f }

// SetLogger sets where the broker logs retries and warnings (default:
// nowhere).
func (b *Broker) SetLogger(l *slog.Logger) {
	if l != nil {
		b.log = l
	}
}

// Close releases the Vault client and zeroes cached data keys.
func (b *Broker) Close() {
	if b.vault != nil && !b.sharedVault {
		b.vault.Close()
	}
	// A Vault client the daemon shares across reloads keeps this broker's
	// restart cache for its token: the cache stays open with it.
	if b.restart != nil && !b.sharedVault {
		b.restart.Close()
	}
	b.closeTokens()
	b.cache.Purge()
}

// VaultClient connects to Vault on first use.
func (b *Broker) VaultClient(ctx context.Context) (*vault.Client, error) {
	if b.vault != nil {
		return b.vault, nil
	}
	vc := vault.Config{}
	if v := b.cfg.Vault; v != nil {
		vc = vault.Config{Address: v.Address, Namespace: v.Namespace, CACert: b.cfg.Resolve(v.CACert), CAPath: b.cfg.Resolve(v.CAPath),
			TLSServerName: v.TLSServerName, InsecureHTTP: v.InsecureHTTP}
	}
	vc.ClientCert, vc.ClientKey = b.clientCert()
	vc.Auth = b.vaultAuth()
	vc.OnLogin = b.onLogin
	vc.Logger = b.log
	vc.Tokens = b.tokenStore()
	c, err := vault.Connect(ctx, vc)
	if err != nil {
		return nil, err
	}
	b.vault = c
	return c, nil
}

// clientCert is the client certificate and key files Vault's client
// presents: cert auth's own, else the vault section's, else
// VAULT_CLIENT_CERT and VAULT_CLIENT_KEY.
func (b *Broker) clientCert() (string, string) {
	v := b.cfg.Vault
	if v == nil {
		return os.Getenv("VAULT_CLIENT_CERT"), os.Getenv("VAULT_CLIENT_KEY")
	}
	if a := v.Auth; a != nil && a.Method == "cert" && a.ClientCert != "" {
		return b.cfg.Resolve(a.ClientCert), b.cfg.Resolve(a.ClientKey)
	}
	if v.ClientCert != "" {
		return b.cfg.Resolve(v.ClientCert), b.cfg.Resolve(v.ClientKey)
	}
	return os.Getenv("VAULT_CLIENT_CERT"), os.Getenv("VAULT_CLIENT_KEY")
}

// vaultAuth is the configured Vault login; without one, a token from
// VAULT_TOKEN (vault.Connect's default too).
func (b *Broker) vaultAuth() vault.Auth {
	if b.cfg.Vault == nil || b.cfg.Vault.Auth == nil {
		return vault.TokenAuth{}
	}
	a := b.cfg.Vault.Auth
	switch a.Method {
	case "token", "":
		return vault.TokenAuth{File: b.cfg.Resolve(a.TokenFile)}
	case "approle":
		return vault.NewAppRoleAuth(vault.AppRoleAuth{Mount: a.Mount, RoleIDFile: b.cfg.Resolve(a.RoleIDFile), SecretIDFile: b.cfg.Resolve(a.SecretIDFile),
			Wrapped: a.SecretIDWrapped, RemoveSecretIDFile: a.RemoveSecretIDFile})
	case "kubernetes":
		return vault.KubernetesAuth{Mount: a.Mount, Role: a.Role, TokenFile: b.cfg.Resolve(a.TokenPath)}
	case "jwt":
		return vault.JWTAuth{Mount: a.Mount, Role: a.Role, JWTFile: b.cfg.Resolve(a.JWTFile)}
	case "cert":
		crt, key := b.clientCert()
		return vault.CertAuth{Mount: a.Mount, Name: a.Name, CertFile: crt, KeyFile: key}
	case "aws":
		return vault.NewAWSAuth(vault.AWSAuth{Mount: a.Mount, Role: a.Role, Region: a.Region, ServerID: a.HeaderValue})
	case "userpass", "ldap":
		return vault.PasswordAuth{Method: a.Method, Mount: a.Mount, Username: a.Username, PasswordFile: b.cfg.Resolve(a.PasswordFile)}
	}
	return vault.TokenAuth{} // the method was checked when the config loaded
}

func (b *Broker) envelopeKeys(ctx context.Context) ([]envelope.KeyWrapper, error) {
	if b.keys != nil {
		return b.keys, nil
	}
	keys, err := b.keyConfig(b.cfg.Keys).ForOpening(ctx)
	if err != nil {
		return nil, err
	}
	b.keys = keys
	return keys, nil
}

// keyConfig is the config's key setup for specs: its key files, the
// data-key cache, the broker's log and its Vault login for Transit keys.
func (b *Broker) keyConfig(specs []string) keys.Config {
	files := make([]string, len(b.cfg.KeyFiles))
	for i, f := range b.cfg.KeyFiles {
		files[i] = b.cfg.Resolve(f)
	}
	return keys.Config{Specs: specs, KeyFiles: files, Cache: b.cache, Log: b.log, Vault: func(ctx context.Context) (*api.Client, error) {
		c, err := b.VaultClient(ctx)
		if err != nil {
			return nil, err
		}
		return c.API(), nil
	}}
}
