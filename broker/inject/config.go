package inject

import (
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/internal/loopback"
)

// Paths inside the broker's containers.
const (
	TokenMountPath = "/var/run/secrets/vault"
	TokenFile      = TokenMountPath + "/token"
	TLSMountPath   = "/vault/tls"
	CacheMountPath = "/var/cache/secrets-broker"
)

// MaxConfigLen bounds the config put in the broker's environment: Linux
// refuses to start a process with one variable over 128 KiB.
const MaxConfigLen = 120 << 10

// Options are the injector's own settings (flags), which a pod cannot
// change.
type Options struct {
	// Image is the broker image added to pods.
	Image string
	// VaultAddress is the default Vault address (a pod may name another
	// with vault.hashicorp.com/service or secrets-broker.io/vault-address).
	VaultAddress string
	// AllowInsecureHTTP lets pods use a plain http:// Vault address off
	// loopback: the platform's decision, never a pod's.
	AllowInsecureHTTP bool
	// TokenAudience is the audience of the projected service-account
	// token the broker logs in with ("": the API server's own).
	TokenAudience string
	// HealthPort is the loopback port of the broker's health endpoint in
	// the pod (its probes query it).
	HealthPort int
	// Defaults for pods that do not say (vault-k8s's injector flags of the
	// same names): the auth mount (default kubernetes), the Vault
	// namespace, a TLS Secret mounted at TLSMountPath and the CA file in
	// it, and vault-k8s's default template (map or json).
	AuthPath        string
	Namespace       string
	TLSSecret       string
	CACert          string
	DefaultTemplate string
}

// Check refuses injector settings no pod could use, at start rather than
// at every pod.
func (o Options) Check() error {
	switch strings.ToLower(o.DefaultTemplate) {
	case "", "map", "json":
	default:
		return fmt.Errorf("--default-template %q is not map or json", o.DefaultTemplate)
	}
	if o.VaultAddress != "" {
		r := &Request{Style: Vault, Role: "check", Outputs: []Output{{File: "x", Template: "x", Mode: DefaultMode}}}
		if _, err := r.Config(o); err != nil {
			return err
		}
	}
	if o.AuthPath != "" {
		if _, err := checkAuthPath("--auth-path", o.AuthPath); err != nil {
			return err
		}
	}
	return nil
}

// brokerConfig is the part of the broker's config the injector writes.
type brokerConfig struct {
	Vault      vaultSection `yaml:"vault"`
	Secrets    yaml.Node    `yaml:"secrets,omitempty"`
	OutputRoot string       `yaml:"output_root"`
	DirMode    string       `yaml:"dir_mode"`
	Outputs    []outputYAML `yaml:"outputs"`
	Refresh    refreshYAML  `yaml:"refresh"`
	Cache      *cacheYAML   `yaml:"cache,omitempty"`
}

type vaultSection struct {
	Address       string   `yaml:"address"`
	Namespace     string   `yaml:"namespace,omitempty"`
	CACert        string   `yaml:"ca_cert,omitempty"`
	CAPath        string   `yaml:"ca_path,omitempty"`
	ClientCert    string   `yaml:"client_cert,omitempty"`
	ClientKey     string   `yaml:"client_key,omitempty"`
	TLSServerName string   `yaml:"tls_server_name,omitempty"`
	InsecureHTTP  bool     `yaml:"insecure_http,omitempty"`
	Auth          authYAML `yaml:"auth"`
}

type authYAML struct {
	Method    string `yaml:"method"`
	Mount     string `yaml:"mount"`
	Role      string `yaml:"role"`
	TokenFile string `yaml:"service_account_token_file"`
}

type outputYAML struct {
	Path              string `yaml:"path"`
	TemplateText      string `yaml:"template_text,omitempty"`
	Secret            string `yaml:"secret,omitempty"`
	Mode              string `yaml:"mode"`
	LeftDelimiter     string `yaml:"left_delimiter,omitempty"`
	RightDelimiter    string `yaml:"right_delimiter,omitempty"`
	ErrorOnMissingKey *bool  `yaml:"error_on_missing_key,omitempty"`
}

type refreshYAML struct {
	MetricsAddress string        `yaml:"metrics_address"`
	StaticInterval time.Duration `yaml:"static_interval,omitempty"`
}

type cacheYAML struct {
	Path string `yaml:"path"`
	Key  string `yaml:"key"`
}

// Config is the broker config the request describes, as YAML (the
// injected containers read it from $SECRETS_BROKER_CONFIG_YAML).
func (r *Request) Config(opts Options) ([]byte, error) {
	addr := r.VaultAddress
	if addr == "" {
		addr = opts.VaultAddress
	}
	where := "the injector's --vault-address"
	if r.VaultAddress != "" {
		where = r.Style + "service"
		if r.Style == Own {
			where = Own + "vault-address"
		}
	}
	if addr == "" {
		return nil, refuse(Vault+"service", "no Vault address: set it on the pod (vault.hashicorp.com/service or secrets-broker.io/vault-address) or give the injector --vault-address")
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		shown := "the value" // never echoed whole: it may hold credentials
		if err == nil {
			shown = fmt.Sprintf("%q", u.Redacted())
		}
		return nil, refuse(where, "%s is not a Vault address such as https://vault.vault.svc:8200 (no user or password in it)", shown)
	}
	insecure := false
	// Only a loopback IP literal is exempt: in a pod, "localhost" is what
	// the pod's /etc/hosts says, and hostAliases let the pod say another
	// address.
	if u.Scheme == "http" && !loopback.IP(u.Hostname()) {
		if !opts.AllowInsecureHTTP {
			return nil, refuse(where, "%s is plain http: the pod's Vault token and every secret would cross the network in clear. Use https (%stls-secret and %sca-cert give the CA), or, if the platform team accepts it, start the injector with --allow-insecure-http", u.Redacted(), r.Style, r.Style)
		}
		insecure = true
	}
	for a, p := range map[string]string{"ca-cert": r.CACert, "ca-key": r.CAPath, "client-cert": r.ClientCert, "client-key": r.ClientKey} {
		if p != "" && (!path.IsAbs(p) || strings.ContainsAny(p, "\x00\n")) {
			return nil, refuse(r.Style+a, "%q must be an absolute path in the broker's container (the tls-secret is mounted at %s)", p, TLSMountPath)
		}
	}
	mount := r.AuthMount
	if mount == "" && opts.AuthPath != "" {
		if mount, err = checkAuthPath("the injector's --auth-path", opts.AuthPath); err != nil {
			return nil, err
		}
	}
	if mount == "" {
		mount = "kubernetes"
	}
	ns, caCert := r.Namespace, r.CACert
	if ns == "" {
		ns = opts.Namespace
	}
	if caCert == "" && r.CAPath == "" {
		caCert = opts.CACert
	}
	c := brokerConfig{
		Vault: vaultSection{Address: addr, Namespace: ns, CACert: caCert, CAPath: r.CAPath, ClientCert: r.ClientCert, ClientKey: r.ClientKey,
			TLSServerName: r.TLSServerName, InsecureHTTP: insecure,
			Auth: authYAML{Method: "kubernetes", Mount: mount, Role: r.Role, TokenFile: TokenFile}},
		OutputRoot: r.MountPath,
		DirMode:    "0755",
		Refresh:    refreshYAML{MetricsAddress: fmt.Sprintf("127.0.0.1:%d", opts.HealthPort), StaticInterval: r.StaticInterval},
	}
	if len(r.Secrets) > 0 {
		c.Secrets = yaml.Node{Kind: yaml.MappingNode}
		for _, s := range r.Secrets {
			c.Secrets.Content = append(c.Secrets.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: s[0]}, &yaml.Node{Kind: yaml.ScalarNode, Value: s[1], Style: yaml.DoubleQuotedStyle})
		}
	}
	if r.CacheKey != "" {
		c.Cache = &cacheYAML{Path: CacheMountPath, Key: r.CacheKey}
	}
	for _, o := range r.Outputs {
		y := outputYAML{Path: o.File, TemplateText: o.Template, Secret: o.Secret, Mode: o.Mode, LeftDelimiter: o.LeftDelimiter, RightDelimiter: o.RightDelimiter}
		if o.MissingKeyOK && o.Template != "" {
			f := false
			y.ErrorOnMissingKey = &f
		}
		c.Outputs = append(c.Outputs, y)
	}
	out, err := yaml.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("writing the broker config: %w", err)
	}
	if len(out) > MaxConfigLen {
		return nil, refuse("metadata.annotations", "the broker config they describe is %d bytes, more than the %d one environment variable can carry (Linux); split the templates over fewer, smaller files", len(out), MaxConfigLen)
	}
	return out, nil
}
