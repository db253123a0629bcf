package inject_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/inject"
)

var opts = inject.Options{Image: "secrets-broker@sha256:abc", VaultAddress: "https://vault.vault.svc:8200", TokenAudience: "vault", HealthPort: 9102}

// pod reads a pod manifest from testdata.
func pod(t *testing.T, name string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(m)
	var p corev1.Pod
	if err := json.Unmarshal(j, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// applied is the pod with the patch applied (the "add" operations the
// injector makes, as the API server applies them).
func applied(t *testing.T, p *corev1.Pod, ops []inject.Op) *corev1.Pod {
	t.Helper()
	j, _ := json.Marshal(p)
	var doc any
	json.Unmarshal(j, &doc)
	for _, op := range ops {
		if op.Op != "add" {
			t.Fatalf("unexpected op %s", op.Op)
		}
		v, _ := json.Marshal(op.Value)
		var val any
		json.Unmarshal(v, &val)
		parts := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
		doc = addAt(t, doc, parts, val)
	}
	out, _ := json.Marshal(doc)
	var res corev1.Pod
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}

func addAt(t *testing.T, doc any, parts []string, val any) any {
	key := strings.ReplaceAll(strings.ReplaceAll(parts[0], "~1", "/"), "~0", "~")
	switch d := doc.(type) {
	case map[string]any:
		if len(parts) == 1 {
			d[key] = val
		} else {
			d[key] = addAt(t, d[key], parts[1:], val)
		}
		return d
	case []any:
		if len(parts) == 1 {
			if key == "-" {
				return append(d, val)
			}
			if key == "0" {
				return append([]any{val}, d...)
			}
		}
		var i int
		json.Unmarshal([]byte(key), &i)
		d[i] = addAt(t, d[i], parts[1:], val)
		return d
	}
	t.Fatalf("cannot add at %v", parts)
	return nil
}

func mutate(t *testing.T, p *corev1.Pod, o inject.Options) (*inject.Result, *corev1.Pod) {
	t.Helper()
	res, err := inject.Mutate(p, o)
	if err != nil {
		t.Fatal(err)
	}
	return res, applied(t, p, res.Patch)
}

func findInit(p *corev1.Pod, name string) (int, *corev1.Container) {
	for i := range p.Spec.InitContainers {
		if p.Spec.InitContainers[i].Name == name {
			return i, &p.Spec.InitContainers[i]
		}
	}
	return -1, nil
}

// validated loads the config the injector wrote with the broker's own
// loader and parses its templates, as `validate` does.
func validated(t *testing.T, res *inject.Result) *config.Config {
	t.Helper()
	cfg, err := config.Parse(res.Config, "injected", t.TempDir())
	if err != nil {
		t.Fatalf("the injected config does not load: %v\n%s", err, res.Config)
	}
	b := broker.New(cfg)
	defer b.Close()
	if _, err := b.Prepare(); err != nil {
		t.Fatalf("the injected config does not validate: %v\n%s", err, res.Config)
	}
	return cfg
}

// A pod written as vault-k8s's documentation writes it gets a native
// sidecar in the restricted profile, held until every file is rendered,
// the files at /vault/secrets in every app container, and a config the
// broker validates.
func TestVaultK8sPod(t *testing.T) {
	p := pod(t, "vault-k8s-template.yaml")
	res, got := mutate(t, p, opts)
	_, c := findInit(got, inject.ContainerName)
	if c == nil {
		t.Fatalf("no sidecar: %+v", got.Spec.InitContainers)
	}
	if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways || c.StartupProbe == nil {
		t.Error("the sidecar is not a native sidecar held by a startup probe")
	}
	sc := c.SecurityContext
	if sc == nil || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || sc.Capabilities.Drop[0] != "ALL" || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("security context not restricted: %+v", sc)
	}
	if c.Resources.Limits.Memory().String() != "64Mi" || c.Resources.Requests.Memory().String() != "24Mi" {
		t.Errorf("resources: %+v", c.Resources)
	}
	for _, ac := range got.Spec.Containers {
		found := false
		for _, m := range ac.VolumeMounts {
			if m.MountPath == "/vault/secrets" && m.Name == inject.SecretsVolume && m.ReadOnly {
				found = true
			}
		}
		if !found {
			t.Errorf("container %s lacks /vault/secrets", ac.Name)
		}
	}
	vols := map[string]corev1.Volume{}
	for _, v := range got.Spec.Volumes {
		vols[v.Name] = v
	}
	if v := vols[inject.SecretsVolume]; v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
		t.Error("the secrets volume is not memory-backed")
	}
	if v := vols[inject.TokenVolume]; v.Projected == nil || v.Projected.Sources[0].ServiceAccountToken.Audience != "vault" {
		t.Error("no projected token with audience vault")
	}
	if got.Annotations[inject.StatusAnnotation] != "injected" {
		t.Error("not marked injected")
	}
	cfg := validated(t, res)
	if cfg.Vault.Auth.Method != "kubernetes" || cfg.Vault.Auth.Role != "db-app" || cfg.OutputRoot != "/vault/secrets" || len(cfg.Outputs) != 2 {
		t.Errorf("config: %+v\n%s", cfg, res.Config)
	}
	for _, o := range cfg.Outputs {
		if o.Mode != "0644" || o.ErrorOnMissingKey == nil || *o.ErrorOnMissingKey {
			t.Errorf("output %s: mode %s, error_on_missing_key %v: want vault-k8s's 0644 and false", o.Path, o.Mode, o.ErrorOnMissingKey)
		}
	}
	if cfg.Outputs[1].Path != "db-creds" || !strings.Contains(cfg.Outputs[1].TemplateText, `{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}`) {
		t.Errorf("a secret without a template renders with vault-k8s's map template: %+v", cfg.Outputs[1])
	}

	// Idempotent: the mutated pod is left as it is.
	again, err := inject.Mutate(got, opts)
	if err != nil || len(again.Patch) != 0 {
		t.Errorf("re-invocation changed the pod again: %v %v", again, err)
	}
}

func TestVaultK8sVariants(t *testing.T) {
	base := func() *corev1.Pod { return pod(t, "vault-k8s-template.yaml") }
	set := func(p *corev1.Pod, kv ...string) *corev1.Pod {
		for i := 0; i+1 < len(kv); i += 2 {
			p.Annotations[kv[i]] = kv[i+1]
		}
		return p
	}
	// pre-populate-only: an init container that renders once.
	_, got := mutate(t, set(base(), "vault.hashicorp.com/agent-pre-populate-only", "true"), opts)
	if _, c := findInit(got, inject.InitName); c == nil || c.RestartPolicy != nil || strings.Join(c.Args, " ") != "run --once" {
		t.Errorf("init-only: %+v", got.Spec.InitContainers)
	}
	// init-first: before the pod's own init containers.
	p := base()
	p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "app"}}
	_, got = mutate(t, set(p, "vault.hashicorp.com/agent-init-first", "true"), opts)
	if i, _ := findInit(got, inject.ContainerName); i != 0 {
		t.Errorf("init-first: broker at %d", i)
	}
	_, got = mutate(t, func() *corev1.Pod {
		p := base()
		p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "app"}}
		return p
	}(), opts)
	if i, _ := findInit(got, inject.ContainerName); i != 1 {
		t.Errorf("default: broker at %d, want after the pod's init containers", i)
	}
	// pre-populate: false: no startup probe holding the app.
	_, got = mutate(t, set(base(), "vault.hashicorp.com/agent-pre-populate", "false"), opts)
	if _, c := findInit(got, inject.ContainerName); c.StartupProbe != nil {
		t.Error("agent-pre-populate: false still holds the app")
	}
	// json default template, file name, perms, containers, resources, tls.
	res, got := mutate(t, set(base(), "vault.hashicorp.com/agent-inject-default-template", "json", "vault.hashicorp.com/agent-inject-file-db-creds", "db/creds.json",
		"vault.hashicorp.com/agent-inject-perms-db-creds", "0640", "vault.hashicorp.com/agent-inject-containers", "app",
		"vault.hashicorp.com/agent-limits-mem", "128Mi", "vault.hashicorp.com/tls-secret", "vault-tls", "vault.hashicorp.com/ca-cert", "/vault/tls/ca.crt",
		"vault.hashicorp.com/auth-path", "auth/k8s-prod", "vault.hashicorp.com/namespace", "team-a"), opts)
	cfg := validated(t, res)
	o := cfg.Outputs[1]
	if o.Path != "db/creds.json" || o.Mode != "0640" || !strings.Contains(o.TemplateText, "toJSON") {
		t.Errorf("json template, file and perms: %+v", o)
	}
	if cfg.Vault.CACert != "/vault/tls/ca.crt" || cfg.Vault.Auth.Mount != "k8s-prod" || cfg.Vault.Namespace != "team-a" {
		t.Errorf("vault section: %+v", cfg.Vault)
	}
	for _, c := range got.Spec.Containers {
		mounted := false
		for _, m := range c.VolumeMounts {
			mounted = mounted || m.Name == inject.SecretsVolume
		}
		if mounted != (c.Name == "app") {
			t.Errorf("agent-inject-containers: app only; %s mounted=%v", c.Name, mounted)
		}
	}
	if _, c := findInit(got, inject.ContainerName); c.Resources.Limits.Memory().String() != "128Mi" {
		t.Errorf("limits: %+v", c.Resources)
	}
}

// What the injector will not do refuses the pod naming the annotation;
// what does not apply is a warning; nothing is ignored silently.
func TestRefusalsAndWarnings(t *testing.T) {
	for _, c := range []struct {
		kv   []string
		want string
	}{
		{[]string{"vault.hashicorp.com/tls-skip-verify", "true"}, "vault.hashicorp.com/tls-skip-verify: refused"},
		{[]string{"vault.hashicorp.com/agent-inject-token", "true"}, "vault.hashicorp.com/agent-inject-token"},
		{[]string{"vault.hashicorp.com/agent-configmap", "agent-cfg"}, "migrate vault-agent"},
		{[]string{"vault.hashicorp.com/auth-type", "approle"}, "vault.hashicorp.com/auth-type"},
		{[]string{"vault.hashicorp.com/agent-inject-perms-db-creds", "0666"}, "lets the group or others write"},
		{[]string{"vault.hashicorp.com/agent-inject-file-db-creds", "../../etc/passwd"}, "beneath the secrets volume"},
		{[]string{"vault.hashicorp.com/agent-run-as-user", "0"}, "0 is root"},
		{[]string{"vault.hashicorp.com/agent-limits-mem", "lots"}, "vault.hashicorp.com/agent-limits-mem"},
		{[]string{"vault.hashicorp.com/agent-requests-mem", "512Mi"}, "above its limit"},
		{[]string{"vault.hashicorp.com/service", "http://vault.vault.svc:8200"}, "plain http"},
		{[]string{"vault.hashicorp.com/role", ""}, "vault.hashicorp.com/role: required"},
		{[]string{"vault.hashicorp.com/agent-pre-populate", "maybe"}, "is not true or false"},
		{[]string{"vault.hashicorp.com/agent-inject-template-db-creds", "{{ with secret \"x\" }}{{ .Data"}, "does not validate"},
		{[]string{"vault.hashicorp.com/agent-inject-template-db-creds", "{{ plugin \"x\" }}"}, "does not validate"},
	} {
		p := pod(t, "vault-k8s-template.yaml")
		for i := 0; i+1 < len(c.kv); i += 2 {
			p.Annotations[c.kv[i]] = c.kv[i+1]
		}
		_, err := inject.Mutate(p, opts)
		var ae *inject.Error
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an annotation error with %q", c.kv, err, c.want)
		}
	}
	// The platform may allow plain http; a pod may not.
	p := pod(t, "vault-k8s-template.yaml")
	p.Annotations["vault.hashicorp.com/service"] = "http://vault.vault.svc:8200"
	o := opts
	o.AllowInsecureHTTP = true
	res, _ := mutate(t, p, o)
	if cfg := validated(t, res); !cfg.Vault.InsecureHTTP {
		t.Error("--allow-insecure-http did not reach the config")
	}
	// Warnings: Vault Agent's own settings, a command, an unknown name.
	p = pod(t, "vault-k8s-template.yaml")
	p.Annotations["vault.hashicorp.com/agent-image"] = "hashicorp/vault:1.21"
	p.Annotations["vault.hashicorp.com/agent-inject-command-db-creds"] = "kill -HUP 1"
	p.Annotations["vault.hashicorp.com/agent-bogus"] = "x"
	res, _ = mutate(t, p, opts)
	all := strings.Join(res.Warnings, "\n")
	for _, want := range []string{"agent-image: not applied", "agent-inject-command-db-creds: not run", "agent-bogus: not a vault-k8s annotation"} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}

// The secrets-broker.io annotations: declared secrets (any reference),
// templates, raw files; an unknown one refuses the pod.
func TestOwnAnnotations(t *testing.T) {
	p := pod(t, "own.yaml")
	res, got := mutate(t, p, opts)
	cfg := validated(t, res)
	if cfg.OutputRoot != "/secrets" || len(cfg.Secrets) != 2 || len(cfg.Outputs) != 2 {
		t.Fatalf("config:\n%s", res.Config)
	}
	if cfg.Outputs[0].Path != "db.conf" || cfg.Outputs[1].Path != "api/key" || cfg.Outputs[1].Secret != "api_key" {
		t.Errorf("outputs: %+v", cfg.Outputs)
	}
	if cfg.Cache == nil || cfg.Cache.Key != "transit:transit/cache" {
		t.Errorf("cache-key: %+v", cfg.Cache)
	}
	if _, c := findInit(got, inject.ContainerName); c == nil {
		t.Fatal("no sidecar")
	}
	p = pod(t, "own.yaml")
	p.Annotations["secrets-broker.io/tempalte-x"] = "y"
	if _, err := inject.Mutate(p, opts); err == nil || !strings.Contains(err.Error(), "secrets-broker.io/tempalte-x: not a secrets-broker.io annotation") {
		t.Errorf("a misspelt annotation: %v", err)
	}
	p = pod(t, "own.yaml")
	p.Annotations["secrets-broker.io/secret-db_password"] = "vault:"
	if _, err := inject.Mutate(p, opts); err == nil || !strings.Contains(err.Error(), "secrets-broker.io/secret-db_password") {
		t.Errorf("a bad reference: %v", err)
	}
}

// A pod that asks for nothing gets nothing.
func TestNotAsked(t *testing.T) {
	p := pod(t, "vault-k8s-template.yaml")
	p.Annotations["vault.hashicorp.com/agent-inject"] = "false"
	res, err := inject.Mutate(p, opts)
	if err != nil || len(res.Patch) != 0 {
		t.Errorf("%v %v", res, err)
	}
}

// What a vault-k8s user switching webhooks relies on (found by a review
// against vault-k8s's source): empty values are unset; the per-secret
// preserve-secret-case; agent-inject-status written so vault-k8s leaves the
// pod alone during a migration; the pod's own init containers get the
// files; a listed container the pod lacks is skipped with a warning; the
// injector's defaults (auth path, namespace, TLS secret and CA, default
// template); plain seconds as a render interval; ca-key as a CA directory;
// NAMESPACE, POD_IP and HOST_IP for templates; JSON in capitals.
func TestVaultK8sCompatibility(t *testing.T) {
	p := pod(t, "vault-k8s-template.yaml")
	p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "app"}}
	for k, v := range map[string]string{
		"vault.hashicorp.com/agent-limits-cpu":                       "",
		"vault.hashicorp.com/agent-pre-populate":                     "",
		"vault.hashicorp.com/agent-inject-secret-Mixed":              "secret/data/mixed",
		"vault.hashicorp.com/preserve-secret-case-Mixed":             "true",
		"vault.hashicorp.com/agent-inject-containers":                "app,migrate,ghost",
		"vault.hashicorp.com/template-static-secret-render-interval": "300",
		"vault.hashicorp.com/ca-key":                                 "/vault/tls/cas",
		"vault.hashicorp.com/agent-inject-default-template":          "JSON",
		"vault.hashicorp.com/agent-inject-file-db-creds":             "./creds/",
	} {
		p.Annotations[k] = v
	}
	o := opts
	o.AuthPath, o.Namespace, o.TLSSecret = "auth/k8s-east", "team-a", "vault-tls"
	res, got := mutate(t, p, o)
	cfg := validated(t, res)
	if cfg.Vault.Auth.Mount != "k8s-east" || cfg.Vault.Namespace != "team-a" || cfg.Vault.CAPath != "/vault/tls/cas" {
		t.Errorf("defaults and ca-key: %+v", cfg.Vault)
	}
	if cfg.Refresh == nil || cfg.Refresh.StaticInterval.String() != "5m0s" {
		t.Errorf("plain seconds: %+v", cfg.Refresh)
	}
	paths := map[string]string{}
	for _, out := range cfg.Outputs {
		paths[out.Path] = out.TemplateText
	}
	if _, ok := paths["Mixed"]; !ok {
		t.Errorf("preserve-secret-case-Mixed: %v", paths)
	}
	if !strings.Contains(paths["creds"], "toJSON") {
		t.Errorf("./creds/ and JSON: %v", paths)
	}
	if got.Annotations["vault.hashicorp.com/agent-inject-status"] != "injected" {
		t.Error("agent-inject-status not written")
	}
	mounted := func(c corev1.Container) bool {
		for _, m := range c.VolumeMounts {
			if m.Name == inject.SecretsVolume {
				return true
			}
		}
		return false
	}
	_, broker := findInit(got, inject.ContainerName)
	_, migrate := findInit(got, "migrate")
	if migrate == nil || !mounted(*migrate) {
		t.Error("the pod's own init container lacks the files")
	}
	if broker == nil || broker.StartupProbe == nil {
		t.Fatal("no sidecar held by a startup probe (an empty agent-pre-populate is unset)")
	}
	if _, ok := broker.Resources.Limits["cpu"]; ok {
		t.Error("an empty agent-limits-cpu set a CPU limit")
	}
	envs := map[string]bool{}
	for _, e := range broker.Env {
		envs[e.Name] = true
	}
	if !envs["NAMESPACE"] || !envs["POD_IP"] || !envs["HOST_IP"] {
		t.Errorf("env: %v", broker.Env)
	}
	tls := false
	for _, v := range got.Spec.Volumes {
		tls = tls || (v.Secret != nil && v.Secret.SecretName == "vault-tls")
	}
	if !tls {
		t.Error("the injector's --tls-secret is not mounted")
	}
	if w := strings.Join(res.Warnings, "\n"); !strings.Contains(w, `no container "ghost"`) {
		t.Errorf("warnings: %s", w)
	}
}

// Found by an attacker's review: "localhost" off the plain-http rule (a
// pod's hostAliases can point it elsewhere); a refusal that would echo
// credentials in an address; a config over what one environment variable
// carries; an app container mounting the injector's volumes; a file that
// cleans to the volume's root; a per-name annotation for no secret.
func TestAttackerFindings(t *testing.T) {
	refused := func(what string, change func(p *corev1.Pod), want string) {
		t.Helper()
		p := pod(t, "vault-k8s-template.yaml")
		change(p)
		_, err := inject.Mutate(p, opts)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", what, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "S3cr3t") {
			t.Errorf("%s: the refusal echoes a credential: %v", what, err)
		}
	}
	refused("http://localhost", func(p *corev1.Pod) { p.Annotations["vault.hashicorp.com/service"] = "http://localhost:8200" }, "plain http")
	refused("credentials in the address", func(p *corev1.Pod) {
		p.Annotations["vault.hashicorp.com/service"] = "https://admin:S3cr3t@vault:8200"
	}, "no user or password")
	refused("a config too large for the environment", func(p *corev1.Pod) {
		p.Annotations["vault.hashicorp.com/agent-inject-template-db-creds"] = strings.Repeat("x", 130<<10)
	}, "one environment variable can carry")
	refused("an app mounting the injector's token", func(p *corev1.Pod) {
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: inject.TokenVolume, MountPath: "/t"}}
	}, "one of the injector's own volumes")
	refused("a file that is the volume itself", func(p *corev1.Pod) {
		p.Annotations["vault.hashicorp.com/agent-inject-file-db-creds"] = "x/.."
	}, "beneath the secrets volume")
	// http://127.0.0.1 stays allowed (a sidecar Vault proxy in the pod).
	p := pod(t, "vault-k8s-template.yaml")
	p.Annotations["vault.hashicorp.com/service"] = "http://127.0.0.1:8200"
	if _, err := inject.Mutate(p, opts); err != nil {
		t.Errorf("http://127.0.0.1: %v", err)
	}
	// A per-secret annotation for no secret is a warning, never silence.
	p = pod(t, "vault-k8s-template.yaml")
	p.Annotations["vault.hashicorp.com/agent-inject-perms-db-cred"] = "0640"
	res, _ := mutate(t, p, opts)
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "agent-inject-perms-db-cred: no secret db-cred") {
		t.Errorf("a mistyped perms annotation: %v", res.Warnings)
	}
	// Own annotations are strict: refused.
	p = pod(t, "own.yaml")
	p.Annotations["secrets-broker.io/perms-db.cnf"] = "0640"
	if _, err := inject.Mutate(p, opts); err == nil || !strings.Contains(err.Error(), "a typo?") {
		t.Errorf("a mistyped own perms annotation: %v", err)
	}
}

// The remaining supported vault-k8s annotations, each reaching the config
// or the container: delimiters, error-on-missing-key, client certificate,
// TLS server name, run-as-same-user and run-as-group, requests and limits.
func TestEveryOtherSupportedAnnotation(t *testing.T) {
	p := pod(t, "vault-k8s-template.yaml")
	uid := int64(1234)
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: &uid}
	for k, v := range map[string]string{
		"vault.hashicorp.com/agent-inject-template-db-creds":      "[[ with secret \"secret/data/db\" ]][[ .Data.data.user ]][[ end ]] {{ literal }}",
		"vault.hashicorp.com/agent-template-left-delim-db-creds":  "[[",
		"vault.hashicorp.com/agent-template-right-delim-db-creds": "]]",
		"vault.hashicorp.com/error-on-missing-key-db-creds":       "true",
		"vault.hashicorp.com/client-cert":                         "/vault/tls/client.crt",
		"vault.hashicorp.com/client-key":                          "/vault/tls/client.key",
		"vault.hashicorp.com/tls-server-name":                     "vault.internal",
		"vault.hashicorp.com/agent-run-as-same-user":              "true",
		"vault.hashicorp.com/agent-run-as-group":                  "2000",
		"vault.hashicorp.com/agent-requests-cpu":                  "20m",
		"vault.hashicorp.com/agent-requests-mem":                  "32Mi",
		"vault.hashicorp.com/agent-limits-cpu":                    "200m",
		"vault.hashicorp.com/namespace":                           "ns1",
	} {
		p.Annotations[k] = v
	}
	res, got := mutate(t, p, opts)
	cfg := validated(t, res)
	var o config.Output
	for _, x := range cfg.Outputs {
		if x.Path == "db-creds" {
			o = x
		}
	}
	if o.LeftDelimiter != "[[" || o.RightDelimiter != "]]" || o.ErrorOnMissingKey != nil {
		t.Errorf("delimiters and error-on-missing-key true (the strict default, so unset): %+v", o)
	}
	if v := cfg.Vault; v.ClientCert != "/vault/tls/client.crt" || v.ClientKey != "/vault/tls/client.key" || v.TLSServerName != "vault.internal" || v.Namespace != "ns1" {
		t.Errorf("vault section: %+v", v)
	}
	_, c := findInit(got, inject.ContainerName)
	if sc := c.SecurityContext; *sc.RunAsUser != 1234 || *sc.RunAsGroup != 2000 {
		t.Errorf("run-as-same-user and run-as-group: %d %d", *sc.RunAsUser, *sc.RunAsGroup)
	}
	if c.Resources.Requests.Cpu().String() != "20m" || c.Resources.Requests.Memory().String() != "32Mi" || c.Resources.Limits.Cpu().String() != "200m" {
		t.Errorf("resources: %+v", c.Resources)
	}
}
