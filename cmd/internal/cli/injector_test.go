package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/inject"
	"github.com/secrets-broker/secrets-broker/broker/inject/webhook"
	"github.com/secrets-broker/secrets-broker/internal/k8stest"
	"github.com/secrets-broker/secrets-broker/internal/testca"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
)

// startInjector serves the webhook on a loopback TLS port and registers it
// with the API server (every namespace but the injector's own).
func startInjector(t *testing.T, k *k8stest.Server, opts inject.Options) {
	t.Helper()
	dir := t.TempDir()
	ca := testca.New(t, "injector-ca")
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(t, "secrets-broker-injector", crt, key)
	ctx, cancel := context.WithCancel(context.Background())
	addrc, errc := make(chan string, 1), make(chan error, 1)
	go func() {
		errc <- webhook.Server{Addr: "127.0.0.1:0", CertFile: crt, KeyFile: key, Handler: webhook.Handler{Options: opts}}.Run(ctx, func(a string) { addrc <- a })
	}()
	t.Cleanup(func() { cancel(); <-errc })
	var addr string
	select {
	case addr = <-addrc:
	case err := <-errc:
		t.Fatalf("injector: %v", err)
	}
	none, fail, ifNeeded, timeout := "None", "Fail", "IfNeeded", 5
	k.Must(t, http.MethodPost, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
		"metadata": map[string]any{"name": "secrets-broker-injector"},
		"webhooks": []any{map[string]any{
			"name":                    "inject.secrets-broker.io",
			"admissionReviewVersions": []string{"v1"},
			"sideEffects":             none, "failurePolicy": fail, "reinvocationPolicy": ifNeeded, "timeoutSeconds": timeout,
			"clientConfig":      map[string]any{"url": "https://" + addr + "/mutate", "caBundle": base64.StdEncoding.EncodeToString(ca.CertPEM)},
			"rules":             []any{map[string]any{"apiGroups": []string{""}, "apiVersions": []string{"v1"}, "operations": []string{"CREATE"}, "resources": []string{"pods"}, "scope": "Namespaced"}},
			"namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": []string{"secrets-broker-system"}}}},
		}},
	}, nil)
}

func namespace(t *testing.T, k *k8stest.Server, name string, labels map[string]string) {
	t.Helper()
	k.Must(t, http.MethodPost, "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name, "labels": labels}}, nil)
	for _, sa := range []string{"default", "payroll"} {
		k.Must(t, http.MethodPost, "/api/v1/namespaces/"+name+"/serviceaccounts", map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": sa}}, nil)
	}
}

type podJSON struct {
	// Raw is kubectl's whole answer (to create the injected pod again).
	Raw      map[string]any `json:"-"`
	Metadata struct {
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		InitContainers []struct {
			Name          string  `json:"name"`
			RestartPolicy *string `json:"restartPolicy"`
			Env           []struct{ Name, Value string }
		} `json:"initContainers"`
		Containers []struct {
			Name         string `json:"name"`
			VolumeMounts []struct {
				Name      string `json:"name"`
				MountPath string `json:"mountPath"`
			} `json:"volumeMounts"`
		} `json:"containers"`
	} `json:"spec"`
}

// dryRun creates the pod with kubectl create --dry-run=server: the API
// server runs the webhook and the namespace's Pod Security admission.
func dryRun(t *testing.T, k *k8stest.Server, ns, manifest string) (podJSON, string, error) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "pod.yaml")
	os.WriteFile(f, []byte(manifest), 0o600)
	cmd := exec.Command(k.KubectlBin, "--kubeconfig", k.Kubeconfig, "create", "--dry-run=server", "-o", "json", "-n", ns, "-f", f)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var p podJSON
	if err == nil {
		if jerr := json.Unmarshal(out.Bytes(), &p); jerr != nil {
			t.Fatalf("kubectl printed no pod: %v\n%s", jerr, out.String())
		}
		json.Unmarshal(out.Bytes(), &p.Raw)
	}
	return p, errb.String(), err
}

func (p podJSON) brokerConfig(t *testing.T) string {
	t.Helper()
	for _, c := range p.Spec.InitContainers {
		if c.Name == inject.ContainerName {
			for _, e := range c.Env {
				if e.Name == inject.EnvConfigYAML {
					return e.Value
				}
			}
		}
	}
	t.Fatalf("no %s container with its config: %+v", inject.ContainerName, p.Spec.InitContainers)
	return ""
}

// A real API server calls the injector on kubectl create --dry-run=server:
// a pod written as vault-k8s's documentation writes it comes back with the
// broker as a native sidecar and /vault/secrets mounted; a namespace that
// enforces the restricted profile admits the injected containers (and
// refuses only the app's own non-compliant container); a refused
// annotation and an unsupported one are told to the user by kubectl; a
// pod injected already is left as it is; and the config put in the pod
// passes validate. Then the pod's broker config and Vault Agent (as
// vault-k8s configures it) render the same files against one Vault,
// logging in with the same kind of projected token.
func TestInjectorAgainstARealAPIServer(t *testing.T) {
	setup(t)
	k := k8stest.Start(t)
	v := vaulttest.Start(t)
	startInjector(t, k, inject.Options{Image: "secrets-broker:test", VaultAddress: v.Addr, TokenAudience: "vault", HealthPort: 9102})
	namespace(t, k, "legacy", nil)
	namespace(t, k, "apps", map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"})
	docs := readFile(t, "testdata/injector/vault-k8s-docs.yaml")

	p, stderr, err := dryRun(t, k, "legacy", docs)
	if err != nil {
		t.Fatalf("kubectl create: %v\n%s", err, stderr)
	}
	if len(p.Spec.InitContainers) != 1 || p.Spec.InitContainers[0].RestartPolicy == nil || *p.Spec.InitContainers[0].RestartPolicy != "Always" {
		t.Fatalf("no native sidecar: %+v", p.Spec.InitContainers)
	}
	mounted := false
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		mounted = mounted || (m.MountPath == "/vault/secrets" && m.Name == inject.SecretsVolume)
	}
	if !mounted || p.Metadata.Annotations[inject.StatusAnnotation] != "injected" {
		t.Fatalf("app container not given /vault/secrets: %+v", p.Spec.Containers)
	}
	cfgYAML := p.brokerConfig(t)
	t.Setenv("SECRETS_BROKER_CONFIG", "")
	t.Setenv("SECRETS_BROKER_CONFIG_YAML", cfgYAML)
	if out := mustRun(t, "", "validate"); !strings.Contains(out, "4 output") {
		t.Errorf("validate of the injected config: %s", out)
	}
	t.Setenv("SECRETS_BROKER_CONFIG_YAML", "")

	// Restricted namespace: the documentation's pod is refused for the
	// app's container only; a compliant pod is admitted with the broker.
	_, stderr, err = dryRun(t, k, "apps", docs)
	if err == nil || !strings.Contains(stderr, `container "app"`) || strings.Contains(stderr, `"secrets-broker"`) {
		t.Errorf("restricted namespace, non-compliant app: %v\n%s", err, stderr)
	}
	restricted := readFile(t, "testdata/injector/restricted.yaml")
	p, stderr, err = dryRun(t, k, "apps", restricted)
	if err != nil {
		t.Fatalf("restricted namespace refused the injected pod: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr, "Warning: secrets-broker: vault.hashicorp.com/agent-image: not applied") {
		t.Errorf("kubectl shows no warning for the unsupported annotation:\n%s", stderr)
	}
	// Re-created from the injected pod: left as it is (one broker).
	p2, stderr, err := dryRun(t, k, "apps", mustJSON(t, map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": "again", "annotations": p.Metadata.Annotations}, "spec": p.Raw["spec"]}))
	if err != nil {
		t.Fatalf("re-creating the injected pod: %v\n%s", err, stderr)
	}
	if n := len(p2.Spec.InitContainers); n != 1 {
		t.Errorf("re-injection: %d init containers, want the one broker", n)
	}
	// A refused annotation: kubectl says which.
	bad := strings.Replace(docs, `vault.hashicorp.com/role: "payroll"`, "vault.hashicorp.com/role: \"payroll\"\n    vault.hashicorp.com/tls-skip-verify: \"true\"", 1)
	if _, stderr, err = dryRun(t, k, "legacy", bad); err == nil || !strings.Contains(stderr, "vault.hashicorp.com/tls-skip-verify: refused") {
		t.Errorf("tls-skip-verify: %v\n%s", err, stderr)
	}

	sideBySide(t, k, v, cfgYAML)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sideBySide renders the injected pod's files with its broker config and
// with Vault Agent configured as vault-k8s configures it (kubernetes
// login, one template per secret, error_on_missing_key false), against one
// Vault, and compares them byte for byte, with their modes.
func sideBySide(t *testing.T, k *k8stest.Server, v *vaulttest.Server, cfgYAML string) {
	const ns = "legacy"
	k.CreateServiceAccount(t, ns, "vault-reviewer")
	k.BindAuthDelegator(t, ns, "vault-reviewer")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "k8s-ca.pem")
	os.WriteFile(caFile, k.CACert, 0o600)
	v.Run(t, "auth", "enable", "kubernetes")
	v.Run(t, "write", "auth/kubernetes/config", "kubernetes_host="+k.URL, "kubernetes_ca_cert=@"+caFile,
		"token_reviewer_jwt="+k.Token(t, ns, "vault-reviewer", "", 24*time.Hour), "disable_local_ca_jwt=true")
	pol := filepath.Join(dir, "payroll.hcl")
	os.WriteFile(pol, []byte(`path "secret/data/*" { capabilities = ["read"] }`), 0o600)
	v.Run(t, "policy", "write", "payroll", pol)
	v.Run(t, "write", "auth/kubernetes/role/payroll", "bound_service_account_names=payroll", "bound_service_account_namespaces="+ns,
		"audience=vault", "token_policies=payroll", "ttl=10m")
	v.Run(t, "kv", "put", "secret/payroll", "username=payroll-app", "password=p@ss w0rd")
	v.Run(t, "kv", "put", "secret/api", "key=ak-123", "region=eu-west-1")
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(k.Token(t, ns, "payroll", "vault", 10*time.Minute)), 0o600)

	// The broker: the pod's own config, its two pod paths pointed here.
	brokerOut := filepath.Join(dir, "broker", "vault", "secrets")
	cfg := strings.ReplaceAll(cfgYAML, inject.TokenFile, tokenFile)
	cfg = strings.ReplaceAll(cfg, "output_root: "+inject.VaultMountPath, "output_root: "+brokerOut)
	t.Setenv("VAULT_TOKEN", "")
	t.Setenv("SECRETS_BROKER_CONFIG", "")
	t.Setenv("SECRETS_BROKER_CONFIG_YAML", cfg)
	mustRun(t, "", "run", "--once", "--timeout", "30s")
	t.Setenv("SECRETS_BROKER_CONFIG_YAML", "")

	// Vault Agent, as vault-k8s writes its config for these annotations.
	agentOut := filepath.Join(dir, "agent", "vault", "secrets")
	var tmpl strings.Builder
	for _, o := range []struct{ file, contents, perms string }{
		{"config.txt", "{{- with secret \"secret/data/payroll\" -}}\npostgres://{{ .Data.data.username }}:{{ .Data.data.password }}@postgres:5432/payroll\n{{- end -}}\n", ""},
		{"payroll-map", "{{ with secret \"secret/data/payroll\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}", ""},
		{"api.json", "{{ with secret \"secret/data/api\" }}{{ .Data.data | toJSONPretty }}{{ end }}\n", ""},
		{"sub/missing.env", "key={{ with secret \"secret/data/api\" }}{{ .Data.data.no_such_key }}{{ end }}\n", "0640"},
	} {
		perms := ""
		if o.perms != "" {
			perms = fmt.Sprintf("  perms = %q\n", o.perms)
		}
		fmt.Fprintf(&tmpl, "template {\n  destination = %q\n  contents = %q\n  left_delimiter = \"{{\"\n  right_delimiter = \"}}\"\n  error_on_missing_key = false\n%s}\n",
			filepath.Join(agentOut, o.file), o.contents, perms)
	}
	hcl := fmt.Sprintf("vault { address = %q }\nauto_auth {\n  method \"kubernetes\" {\n    mount_path = \"auth/kubernetes\"\n    config = {\n      role = \"payroll\"\n      token_path = %q\n    }\n  }\n}\nexit_after_auth = true\n%s",
		v.Addr, tokenFile, tmpl.String())
	runVaultAgent(t, v, dir, hcl)
	for _, f := range []string{"config.txt", "payroll-map", "api.json", "sub/missing.env"} {
		want, got := readFile(t, filepath.Join(agentOut, f)), readFile(t, filepath.Join(brokerOut, f))
		if got != want {
			t.Errorf("%s differs:\nvault agent:\n%q\nsecrets-broker:\n%q", f, want, got)
		}
		if !strings.Contains(want, "payroll-app") && !strings.Contains(want, "ak-123") && f != "sub/missing.env" {
			t.Errorf("%s: Vault Agent rendered nothing to compare: %q", f, want)
		}
		wi, _ := os.Stat(filepath.Join(agentOut, f))
		gi, _ := os.Stat(filepath.Join(brokerOut, f))
		if wi.Mode().Perm() != gi.Mode().Perm() {
			t.Errorf("%s: mode %o, Vault Agent's %o", f, gi.Mode().Perm(), wi.Mode().Perm())
		}
	}
}

// The injector's own settings are checked at start, all missing flags
// named at once, not at every pod.
func TestInjectorFlagsAreCheckedAtStart(t *testing.T) {
	wantExit(t, run(t, "", "injector"), 2, "--tls-cert and --tls-key (the API server calls webhooks over HTTPS only) and --image")
	wantExit(t, run(t, "", "injector", "--tls-cert", "c", "--tls-key", "k", "--image", "i", "--default-template", "yaml"), 2, `--default-template "yaml" is not map or json`)
	wantExit(t, run(t, "", "injector", "--tls-cert", "c", "--tls-key", "k", "--image", "i", "--vault-address", "http://vault:8200"), 2, "--vault-address: http://vault:8200 is plain http")
	wantExit(t, run(t, "", "injector", "--tls-cert", "c", "--tls-key", "k", "--image", "i", "--auth-path", "auth/../x"), 2, "--auth-path")
}
