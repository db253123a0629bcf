package inject

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// vault-k8s's defaults, as its documentation states them.
const (
	VaultMountPath = "/vault/secrets"
	// DefaultMode is the mode of rendered files: Vault Agent's (and
	// consul-template's) 0644, so an app running as any user in the pod
	// reads them; the volume is the pod's alone.
	DefaultMode = "0644"
)

// The templates vault-k8s renders a secret with when the pod gives none
// (agent-inject-default-template: map, the default, or json).
const (
	mapTemplate  = "{{ with secret \"%s\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}"
	jsonTemplate = "{{ with secret \"%s\" }}{{ .Data | toJSON }}\n{{ end }}"
)

// Per-secret vault-k8s annotations (NAME follows a dash).
var vaultPerSecret = []string{
	"agent-inject-secret-", "agent-inject-template-file-", "agent-inject-template-",
	"agent-inject-file-", "agent-inject-perms-", "agent-inject-command-",
	"agent-template-left-delim-", "agent-template-right-delim-", "error-on-missing-key-",
	"secret-volume-path-", "preserve-secret-case-",
}

// vaultIgnored are vault-k8s annotations about Vault Agent itself: read,
// reported as not applying, never an error.
var vaultIgnored = map[string]string{
	"agent-image":                             "the injector's own secrets-broker image is used",
	"agent-set-security-context":              "the broker always runs with the restricted profile's security context",
	"agent-share-process-namespace":           "the broker signals nothing in the app's containers",
	"agent-cache-enable":                      "there is no Vault proxy listener; use secrets-broker.io/cache-key for the restart cache",
	"agent-cache-use-auto-auth-token":         "there is no Vault proxy listener",
	"agent-cache-listener-port":               "there is no Vault proxy listener",
	"agent-cache-exit-on-err":                 "there is no Vault proxy listener",
	"agent-revoke-on-shutdown":                "leases end with their TTL; the broker does not revoke at shutdown",
	"agent-revoke-grace":                      "leases end with their TTL; the broker does not revoke at shutdown",
	"agent-limits-ephemeral":                  "the broker writes only to memory-backed volumes",
	"agent-requests-ephemeral":                "the broker writes only to memory-backed volumes",
	"client-max-retries":                      "the broker retries with its one backoff policy",
	"client-timeout":                          "the broker's request timeout is fixed (30 s)",
	"go-max-procs":                            "not needed by the broker",
	"log-level":                               "the broker logs at info",
	"log-format":                              "the broker logs text lines",
	"proxy-address":                           "the broker takes a proxy only from HTTPS_PROXY in its own environment, never from a pod's annotations",
	"agent-enable-quit":                       "the broker stops with the pod",
	"auth-min-backoff":                        "the broker retries with its one backoff policy",
	"auth-max-backoff":                        "the broker retries with its one backoff policy",
	"agent-disable-idle-connections":          "not needed by the broker",
	"agent-disable-keep-alives":               "not needed by the broker",
	"agent-auto-auth-exit-on-err":             "a failed login is retried, and /readyz says so",
	"template-config-exit-on-retry-failure":   "run --once exits non-zero naming the failed output; the sidecar keeps the last good values",
	"template-max-connections-per-host":       "at most 16 Vault requests are in flight",
	"template-lease-renewal-threshold":        "leases renew at a random point in 1/3-5/6 of the time left",
	"agent-telemetry":                         "the broker's metrics are on its loopback health port",
	"agent-service-account-token-volume-name": "the injector mounts a projected token of its own (audience: its --token-audience)",
	"agent-copy-volume-mounts":                "the broker needs only its own volumes",
	"agent-extra-secret":                      "the broker mounts only the tls-secret",
	"agent-request-namespace":                 "use vault.hashicorp.com/namespace",
}

// vaultRefused are vault-k8s annotations the injector cannot honour
// safely: the pod is refused, so nothing starts without what it asked for.
var vaultRefused = map[string]string{
	"agent-inject-token":    "the broker never writes its Vault token where the app can read it (docs/kubernetes.md): render what the app needs as files, or give the app a Vault login of its own",
	"agent-configmap":       "a Vault Agent config in a ConfigMap is not read here: convert it once with secrets-broker migrate vault-agent and use the secrets-broker.io annotations",
	"agent-json-patch":      "JSON patches of the injected container are not applied; the broker's container is fixed to the restricted profile",
	"agent-init-json-patch": "JSON patches of the injected container are not applied; the broker's container is fixed to the restricted profile",
}

// parseVault reads vault-k8s's annotations, as its documentation writes
// them.
func parseVault(ann map[string]string, opts Options) (*Request, error) {
	r := &Request{Style: Vault, MountPath: VaultMountPath, Hold: true, TLSSecret: opts.TLSSecret}
	// An empty value is unset, as vault-k8s reads it (agent-limits-cpu: ""
	// is how a pod drops the CPU limit).
	get := func(k string) (string, bool) {
		v, ok := ann[Vault+k]
		v = strings.TrimSpace(v)
		return v, ok && v != ""
	}
	var err error
	if v, ok := get("tls-skip-verify"); ok {
		if skip, err := parseBool(Vault+"tls-skip-verify", v); err != nil {
			return nil, err
		} else if skip {
			return nil, refuse(Vault+"tls-skip-verify", "refused: the broker always verifies Vault's certificate, since an unverified connection hands its Vault token to whoever answers; give the CA with vault.hashicorp.com/tls-secret and ca-cert")
		}
	}
	if v, ok := get("auth-type"); ok && v != "kubernetes" {
		return nil, refuse(Vault+"auth-type", "%q: injected brokers log in with the kubernetes method (a projected service-account token); other methods need a config of their own", v)
	}
	r.Role, _ = get("role")
	if r.Role == "" {
		return nil, refuse(Vault+"role", "required: the Vault kubernetes role the pod logs in as")
	}
	if v, ok := get("auth-path"); ok {
		if r.AuthMount, err = checkAuthPath(Vault+"auth-path", v); err != nil {
			return nil, err
		}
	}
	r.VaultAddress, _ = get("service")
	r.Namespace, _ = get("namespace")
	r.CACert, _ = get("ca-cert")
	r.CAPath, _ = get("ca-key") // vault-k8s writes it as Vault Agent's ca_path
	r.TLSServerName, _ = get("tls-server-name")
	r.ClientCert, _ = get("client-cert")
	r.ClientKey, _ = get("client-key")
	if v, ok := get("tls-secret"); ok {
		r.TLSSecret = v
	}
	if v, ok := get("secret-volume-path"); ok {
		if err := checkMountPath(Vault+"secret-volume-path", v); err != nil {
			return nil, err
		}
		r.MountPath = v
	}
	for _, b := range []struct {
		key string
		to  *bool
		not bool
	}{{"agent-pre-populate-only", &r.InitOnly, false}, {"agent-pre-populate", &r.Hold, false}, {"agent-init-first", &r.InitFirst, false}, {"agent-run-as-same-user", &r.SameUser, false}} {
		if v, ok := get(b.key); ok {
			if *b.to, err = parseBool(Vault+b.key, v); err != nil {
				return nil, err
			}
		}
	}
	if v, ok := get("agent-inject-containers"); ok {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				r.Containers = append(r.Containers, c)
			}
		}
	}
	if err := resources(r, ann, Vault+"agent-requests-", Vault+"agent-limits-", "mem"); err != nil {
		return nil, err
	}
	if v, ok := get("agent-run-as-user"); ok {
		if r.RunAsUser, err = parseID(Vault+"agent-run-as-user", v); err != nil {
			return nil, err
		}
	}
	if v, ok := get("agent-run-as-group"); ok {
		if r.RunAsGroup, err = parseID(Vault+"agent-run-as-group", v); err != nil {
			return nil, err
		}
	}
	if v, ok := get("template-static-secret-render-interval"); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			v += "s" // plain seconds, as vault-k8s accepts them
		}
		if r.StaticInterval, err = parseDuration(Vault+"template-static-secret-render-interval", v); err != nil {
			return nil, err
		}
	}
	defaultTemplate := mapTemplate
	dt, ok := get("agent-inject-default-template")
	if !ok {
		dt, ok = opts.DefaultTemplate, opts.DefaultTemplate != ""
	}
	if ok {
		switch v := strings.ToLower(dt); v {
		case "map":
		case "json":
			defaultTemplate = jsonTemplate
		default:
			return nil, refuse(Vault+"agent-inject-default-template", "%q is not map or json", v)
		}
	}
	preserve := false
	if v, ok := get("preserve-secret-case"); ok {
		if preserve, err = parseBool(Vault+"preserve-secret-case", v); err != nil {
			return nil, err
		}
	}
	if err := vaultOutputs(r, ann, defaultTemplate, preserve); err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(ann, Vault) {
		name := strings.TrimPrefix(k, Vault)
		if why, ok := vaultRefused[name]; ok {
			if b, err := parseBool(k, ann[k]); err == nil && !b && name == "agent-inject-token" {
				continue // "false" asks for nothing
			}
			return nil, refuse(k, "%s", why)
		}
		if why, ok := vaultIgnored[name]; ok {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: not applied: %s", k, why))
			continue
		}
		if strings.HasPrefix(name, "auth-config-") {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: not applied: the kubernetes login takes only the role and mount here", k))
			continue
		}
		if strings.HasPrefix(name, "agent-telemetry-") {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: not applied: the broker's metrics are on its loopback health port", k))
			continue
		}
		if !vaultKnown(name) {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s: not a vault-k8s annotation secrets-broker knows; ignored", k))
		}
	}
	if len(sortedKeys(ann, Own)) > 0 {
		r.Warnings = append(r.Warnings, "secrets-broker.io annotations are read only with secrets-broker.io/inject: \"true\"; vault.hashicorp.com ones were used")
	}
	return r, nil
}

// vaultKnown are the vault-k8s annotations parseVault acts on.
func vaultKnown(name string) bool {
	switch name {
	case "agent-inject", "agent-inject-status", "role", "auth-path", "auth-type", "service", "namespace", "ca-cert",
		"tls-server-name", "client-cert", "client-key", "tls-secret", "tls-skip-verify", "secret-volume-path",
		"agent-pre-populate-only", "agent-pre-populate", "agent-init-first", "agent-run-as-same-user",
		"agent-inject-containers", "agent-requests-cpu", "agent-requests-mem", "agent-limits-cpu", "agent-limits-mem",
		"agent-run-as-user", "agent-run-as-group", "template-static-secret-render-interval",
		"agent-inject-default-template", "preserve-secret-case":
		return true
	}
	for _, p := range vaultPerSecret {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// vaultOutputs reads the per-secret annotations: a file for every NAME of
// agent-inject-secret-NAME or agent-inject-template-NAME, as vault-k8s
// names them (lower case unless preserve-secret-case).
func vaultOutputs(r *Request, ann map[string]string, defaultTemplate string, preserve bool) error {
	per := func(prefix, raw string) (string, bool) { v, ok := ann[Vault+prefix+raw]; return v, ok }
	seen := map[string]bool{}
	var raws []string
	for _, p := range []string{"agent-inject-secret-", "agent-inject-template-file-", "agent-inject-template-"} {
		for _, k := range sortedKeys(ann, Vault+p) {
			raw := strings.TrimPrefix(k, Vault+p)
			if p == "agent-inject-template-" && strings.HasPrefix(raw, "file-") {
				continue // agent-inject-template-file-NAME
			}
			if raw == "" || strings.TrimSpace(ann[k]) == "" || seen[raw] {
				continue
			}
			seen[raw] = true
			raws = append(raws, raw)
		}
	}
	for _, raw := range raws {
		if _, ok := per("agent-inject-template-file-", raw); ok {
			if _, hasInline := per("agent-inject-template-", raw); !hasInline {
				return refuse(Vault+"agent-inject-template-file-"+raw, "a template file inside Vault Agent's volumes is not read; give the template itself in vault.hashicorp.com/agent-inject-template-%s", raw)
			}
		}
		name := raw
		keep := preserve
		if v, ok := per("preserve-secret-case-", raw); ok && strings.TrimSpace(v) != "" {
			b, err := parseBool(Vault+"preserve-secret-case-"+raw, v)
			if err != nil {
				return err
			}
			keep = b
		}
		if !keep {
			name = strings.ToLower(raw)
		}
		o := Output{File: name, Mode: DefaultMode, MissingKeyOK: true}
		if f, ok := per("agent-inject-file-", raw); ok && f != "" {
			if c := path.Clean(strings.TrimPrefix(f, "/")); c != "." { // vault-k8s joins it to the mount path
				o.File = c
			} else {
				o.File = f
			}
		}
		if err := checkFile(Vault+"agent-inject-secret-"+raw, o.File); err != nil {
			return err
		}
		if t, ok := per("agent-inject-template-", raw); ok && strings.TrimSpace(t) != "" {
			o.Template = t
		} else {
			p, _ := per("agent-inject-secret-", raw)
			if strings.ContainsAny(p, "\"\\{}\n") {
				return refuse(Vault+"agent-inject-secret-"+raw, "%q is not a Vault path", p)
			}
			o.Template = fmt.Sprintf(defaultTemplate, p)
		}
		if v, ok := per("agent-inject-perms-", raw); ok && strings.TrimSpace(v) != "" {
			m, err := parseMode(Vault+"agent-inject-perms-"+raw, v)
			if err != nil {
				return err
			}
			o.Mode = m
		}
		if v, ok := per("error-on-missing-key-", raw); ok && strings.TrimSpace(v) != "" {
			strict, err := parseBool(Vault+"error-on-missing-key-"+raw, v)
			if err != nil {
				return err
			}
			o.MissingKeyOK = !strict
		}
		o.LeftDelimiter, _ = per("agent-template-left-delim-", raw)
		o.RightDelimiter, _ = per("agent-template-right-delim-", raw)
		if (o.LeftDelimiter == "") != (o.RightDelimiter == "") {
			return refuse(Vault+"agent-template-left-delim-"+raw, "left and right delimiters go together")
		}
		if _, ok := per("agent-inject-command-", raw); ok {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%sagent-inject-command-%s: not run: the broker's image has no shell; have the app watch %s (inotify) or run its reload itself", Vault, raw, o.File))
		}
		if _, ok := per("secret-volume-path-", raw); ok {
			return refuse(Vault+"secret-volume-path-"+raw, "one volume holds every file here: set vault.hashicorp.com/secret-volume-path for all, and agent-inject-file-%s for a subdirectory", raw)
		}
		r.Outputs = append(r.Outputs, o)
	}
	// A per-secret annotation for a NAME no secret has is a typo (perms
	// left at the default, say): said, never silently dropped.
	for _, p := range vaultPerSecret {
		for _, k := range sortedKeys(ann, Vault+p) {
			raw := strings.TrimPrefix(k, Vault+p)
			if p == "agent-inject-template-" && strings.HasPrefix(raw, "file-") {
				continue
			}
			if !seen[raw] && p != "agent-inject-secret-" && p != "agent-inject-template-" && p != "agent-inject-template-file-" {
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s: no secret %s (agent-inject-secret-%s); not applied", k, raw, raw))
			}
		}
	}
	files := map[string]string{}
	for i, o := range r.Outputs {
		if prev, dup := files[o.File]; dup {
			return refuse(Vault+"agent-inject-file-"+raws[i], "%s is also the file of secret %s (names are lower-cased unless preserve-secret-case)", o.File, prev)
		}
		files[o.File] = raws[i]
	}
	if len(r.Outputs) > MaxOutputs {
		return refuse(Vault+"agent-inject-secret-*", "%d files, more than the %d one pod may ask for", len(r.Outputs), MaxOutputs)
	}
	if len(r.Outputs) == 0 {
		return refuse(Vault+"agent-inject-secret-NAME", "no secret to render: add vault.hashicorp.com/agent-inject-secret-NAME: PATH (and optionally agent-inject-template-NAME)")
	}
	return nil
}

// resources reads the cpu and memory requests and limits.
func resources(r *Request, ann map[string]string, requests, limits, mem string) error {
	for _, x := range []struct {
		prefix string
		into   *map[string]resource.Quantity
	}{{requests, &r.Requests}, {limits, &r.Limits}} {
		for _, kind := range []string{"cpu", mem} {
			k := x.prefix + kind
			v, ok := ann[k]
			if v = strings.TrimSpace(v); !ok || v == "" {
				continue // empty: unset (vault-k8s drops the limit)
			}
			q, err := parseQuantity(k, v)
			if err != nil {
				return err
			}
			if *x.into == nil {
				*x.into = map[string]resource.Quantity{}
			}
			name := kind
			if kind == mem {
				name = "memory"
			}
			(*x.into)[name] = q
		}
	}
	return nil
}
