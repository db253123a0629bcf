package inject

import (
	"fmt"
	"slices"
	"strings"

	"github.com/secrets-broker/secrets-broker/broker/config"
)

// OwnMountPath is where outputs appear with the secrets-broker.io
// annotations.
const OwnMountPath = "/secrets"

// Per-output own annotations (NAME, the file, follows a dash) and
// per-secret ones.
var ownPerName = []string{"secret-", "template-", "file-", "perms-", "error-on-missing-key-"}

// parseOwn reads the secrets-broker.io annotations:
//
//	secrets-broker.io/inject: "true"
//	secrets-broker.io/role: web                         # Vault kubernetes role
//	secrets-broker.io/secret-db_password: vault:secret/data/db#password
//	secrets-broker.io/template-db.conf: |               # a file rendered from a template
//	  password={{ secret "db_password" }}
//	secrets-broker.io/file-db_password: db/password     # a declared secret as a raw file
func parseOwn(ann map[string]string, opts Options) (*Request, error) {
	r := &Request{Style: Own, MountPath: OwnMountPath, Hold: true, TLSSecret: opts.TLSSecret}
	get := func(k string) (string, bool) { v, ok := ann[Own+k]; return v, ok }
	var err error
	r.Role, _ = get("role")
	if r.Role == "" {
		return nil, refuse(Own+"role", "required: the Vault kubernetes role the pod logs in as")
	}
	if v, ok := get("auth-path"); ok {
		if r.AuthMount, err = checkAuthPath(Own+"auth-path", v); err != nil {
			return nil, err
		}
	}
	r.VaultAddress, _ = get("vault-address")
	r.Namespace, _ = get("vault-namespace")
	r.CACert, _ = get("ca-cert")
	r.TLSServerName, _ = get("tls-server-name")
	if v, ok := get("tls-secret"); ok && v != "" {
		r.TLSSecret = v
	}
	r.CacheKey, _ = get("cache-key")
	if v, ok := get("mount-path"); ok {
		if err := checkMountPath(Own+"mount-path", v); err != nil {
			return nil, err
		}
		r.MountPath = v
	}
	if v, ok := get("mode"); ok {
		switch v {
		case "sidecar":
		case "init-only":
			r.InitOnly = true
		default:
			return nil, refuse(Own+"mode", "%q is not sidecar (keeps secrets fresh; the default) or init-only (renders once, for Jobs)", v)
		}
	}
	if v, ok := get("init-first"); ok {
		if r.InitFirst, err = parseBool(Own+"init-first", v); err != nil {
			return nil, err
		}
	}
	if v, ok := get("containers"); ok {
		for _, c := range strings.Split(v, ",") {
			if c = strings.TrimSpace(c); c != "" {
				r.Containers = append(r.Containers, c)
			}
		}
	}
	if err := resources(r, ann, Own+"requests-", Own+"limits-", "memory"); err != nil {
		return nil, err
	}
	if v, ok := get("run-as-user"); ok {
		if r.RunAsUser, err = parseID(Own+"run-as-user", v); err != nil {
			return nil, err
		}
	}
	if v, ok := get("run-as-group"); ok {
		if r.RunAsGroup, err = parseID(Own+"run-as-group", v); err != nil {
			return nil, err
		}
	}
	if err := ownOutputs(r, ann); err != nil {
		return nil, err
	}
	for _, k := range sortedKeys(ann, Own) {
		if !ownKnown(strings.TrimPrefix(k, Own)) {
			return nil, refuse(k, "not a secrets-broker.io annotation (docs/kubernetes.md lists them)")
		}
	}
	if len(sortedKeys(ann, Vault)) > 0 {
		r.Warnings = append(r.Warnings, "vault.hashicorp.com annotations ignored: secrets-broker.io/inject is set, so only secrets-broker.io annotations are read")
	}
	return r, nil
}

func ownKnown(name string) bool {
	switch name {
	case "inject", "status", "role", "auth-path", "vault-address", "vault-namespace", "ca-cert", "tls-server-name",
		"tls-secret", "cache-key", "mount-path", "mode", "init-first", "containers", "requests-cpu", "requests-memory",
		"limits-cpu", "limits-memory", "run-as-user", "run-as-group":
		return true
	}
	for _, p := range ownPerName {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ownOutputs: secret-NAME declares a secret (any secret reference);
// template-FILE renders a file; a declared secret no template names... is
// rendered raw to file-NAME (default NAME) only when file-NAME is given or
// no template exists at all.
func ownOutputs(r *Request, ann map[string]string) error {
	per := func(prefix, name string) (string, bool) { v, ok := ann[Own+prefix+name]; return v, ok }
	for _, k := range sortedKeys(ann, Own+"secret-") {
		name := strings.TrimPrefix(k, Own+"secret-")
		if _, err := config.ParseSecretRef(ann[k]); err != nil {
			return refuse(k, "%q is not a secret reference such as vault:secret/data/app#password", ann[k])
		}
		if !config.ValidSecretName(name) {
			return refuse(k, "%q is not a secret name (a letter or _, then letters, digits, _ . -; at most 128)", name)
		}
		r.Secrets = append(r.Secrets, [2]string{name, ann[k]})
	}
	templates := sortedKeys(ann, Own+"template-")
	for _, k := range templates {
		file := strings.TrimPrefix(k, Own+"template-")
		if err := checkFile(k, file); err != nil {
			return err
		}
		o := Output{File: file, Template: ann[k], Mode: DefaultMode}
		if err := ownOutputOptions(&o, ann, file); err != nil {
			return err
		}
		r.Outputs = append(r.Outputs, o)
	}
	for _, s := range r.Secrets {
		f, ok := per("file-", s[0])
		if !ok && len(templates) > 0 {
			continue // used by the templates
		}
		if !ok {
			f = s[0]
		}
		if err := checkFile(Own+"file-"+s[0], f); err != nil {
			return err
		}
		o := Output{File: f, Secret: s[0], Mode: DefaultMode}
		if err := ownOutputOptions(&o, ann, s[0]); err != nil {
			return err
		}
		r.Outputs = append(r.Outputs, o)
	}
	if len(r.Outputs) > MaxOutputs {
		return refuse(Own+"template-*", "%d files, more than the %d one pod may ask for", len(r.Outputs), MaxOutputs)
	}
	if len(r.Outputs) == 0 {
		return refuse(Own+"secret-NAME", "no secret to render: add secrets-broker.io/secret-NAME: REF (and optionally template-FILE)")
	}
	for _, p := range []string{"file-", "perms-", "error-on-missing-key-"} {
		for _, k := range sortedKeys(ann, Own+p) {
			name := strings.TrimPrefix(k, Own+p)
			_, isSecret := ann[Own+"secret-"+name]
			_, isTemplate := ann[Own+"template-"+name]
			if !isSecret && !isTemplate && !(p == "perms-" && slices.ContainsFunc(r.Outputs, func(o Output) bool { return o.File == name })) {
				return refuse(k, "no secret-%s or template-%s: a typo?", name, name)
			}
		}
	}
	seen := map[string]bool{}
	for _, o := range r.Outputs {
		if seen[o.File] {
			return refuse(Own+"file-*", "two outputs write %s", o.File)
		}
		seen[o.File] = true
	}
	return nil
}

func ownOutputOptions(o *Output, ann map[string]string, name string) error {
	if v, ok := ann[Own+"perms-"+name]; ok {
		m, err := parseMode(Own+"perms-"+name, v)
		if err != nil {
			return err
		}
		o.Mode = m
	}
	if v, ok := ann[Own+"error-on-missing-key-"+name]; ok {
		strict, err := parseBool(Own+"error-on-missing-key-"+name, v)
		if err != nil {
			return err
		}
		o.MissingKeyOK = !strict
	}
	return nil
}

// Describe is the request in one line for the injector's log (no values:
// annotations hold references and templates, never secrets).
func (r *Request) Describe() string {
	return fmt.Sprintf("%s role=%s outputs=%d init_only=%v", strings.TrimSuffix(r.Style, "/"), r.Role, len(r.Outputs), r.InitOnly)
}
