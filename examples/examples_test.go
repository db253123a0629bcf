// Package examples_test checks the deployment examples against real
// components: the Kubernetes manifests with a real API server (server-side
// dry-run, the restricted Pod Security Standard enforced), and every
// broker config they carry with the broker's own validation.
package examples_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/internal/k8stest"
)

func TestKubernetesManifestsPassServerDryRun(t *testing.T) {
	k := k8stest.Start(t)
	t.Logf("etcd and kube-apiserver ready in %s", k.Started)
	// The namespace enforces the restricted Pod Security Standard.
	k.Must(t, http.MethodPost, "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{
		"name": "payments", "labels": map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/audit": "restricted"}}}, nil)
	out, err := k.Kubectl("apply", "--dry-run=server", "-k", "kubernetes")
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server -k: %v\n%s", err, out)
	}
	for _, want := range []string{"serviceaccount/payments created (server dry run)", "configmap/secrets-broker created (server dry run)",
		"deployment.apps/payments-init created (server dry run)", "deployment.apps/payments-sidecar created (server dry run)",
		"configmap/secrets-broker-token created (server dry run)", "deployment.apps/payments-token created (server dry run)"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(strings.ToLower(out), "warning") {
		t.Errorf("the API server warned (Pod Security or deprecation):\n%s", out)
	}
	// The dry-run does check: a pod that needs privilege is refused.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	manifest, _ := os.ReadFile("kubernetes/deployment-init.yaml")
	os.WriteFile(bad, []byte(strings.Replace(string(manifest), "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", 1)), 0o600)
	if out, err := k.Kubectl("apply", "--dry-run=server", "-n", "payments", "-f", bad); err == nil && !strings.Contains(out, "violate PodSecurity") {
		t.Fatalf("a privileged variant passed without a Pod Security warning:\n%s", out)
	}
}

// The configs in the ConfigMaps are valid broker configs.
func TestKubernetesConfigMapValidates(t *testing.T) {
	for _, name := range []string{"configmap.yaml", "configmap-token.yaml"} {
		data, err := os.ReadFile("kubernetes/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var cm struct {
			Data map[string]string `yaml:"data"`
		}
		if err := yaml.Unmarshal(data, &cm); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Parse([]byte(cm.Data["broker.yaml"]), name+"#broker.yaml", "/etc/secrets-broker")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := broker.New(cfg).Prepare(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

// tool finds a linter that make test installs; missing, the test fails.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s is not installed (scripts/test.sh installs it)", name)
	return ""
}

// validateConfig checks a broker config the way `secrets-broker validate`
// does (contacting nothing). The group "secrets" exists on the target host,
// not here: root stands in for it.
func validateConfig(t *testing.T, name string, text []byte) {
	t.Helper()
	text = []byte(strings.NewReplacer("dir_group: secrets", "dir_group: root", "group: secrets", "group: root").Replace(string(text)))
	cfg, err := config.Parse(text, name, "/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broker.New(cfg).Prepare(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func TestSystemdUnitVerifies(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	unit, err := os.ReadFile("systemd/secrets-broker.service")
	if err != nil {
		t.Fatal(err)
	}
	// systemd-analyze checks that ExecStart's binary exists: use this build's.
	dir := t.TempDir()
	bin := filepath.Join(dir, "secrets-broker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/secrets-broker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	verify := func(text string) (string, error) {
		p := filepath.Join(dir, "secrets-broker.service")
		os.WriteFile(p, []byte(strings.ReplaceAll(text, "/usr/local/bin/secrets-broker", bin)), 0o644)
		out, err := exec.Command(analyze, "verify", p).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(string(unit)); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, _ := verify(strings.Replace(string(unit), "ProtectSystem=strict", "ProtectSystem=bogus", 1)); !strings.Contains(out, "bogus") {
		t.Fatalf("systemd-analyze did not flag a broken unit: %s", out)
	}
	for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "LoadCredential=", "RuntimeDirectory=", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	cfg, _ := os.ReadFile("systemd/broker.yaml")
	validateConfig(t, "systemd/broker.yaml", cfg)
}

func TestComposeFileValidates(t *testing.T) {
	compose := tool(t, "docker-compose")
	check := func(text string) (string, error) {
		p := filepath.Join(t.TempDir(), "compose.yaml")
		os.WriteFile(p, []byte(text), 0o644)
		out, err := exec.Command(compose, "-f", p, "config", "-q").CombinedOutput()
		return string(out), err
	}
	text, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := check(string(text)); err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, out)
	}
	if _, err := check(strings.Replace(string(text), "service_completed_successfully", "service_finished_somehow", 1)); err == nil {
		t.Fatal("docker-compose accepted an unknown depends_on condition: it is not validating")
	}
	cfg, _ := os.ReadFile("compose/broker.yaml")
	validateConfig(t, "compose/broker.yaml", cfg)
}

// heredocConfig returns the broker.yaml a CI example writes with a heredoc.
func heredocConfig(t *testing.T, text string) []byte {
	t.Helper()
	_, rest, ok := strings.Cut(text, "<<YAML\n")
	body, _, ok2 := strings.Cut(rest, "\n")
	if !ok || !ok2 {
		t.Fatal("no broker.yaml heredoc")
	}
	var lines []string
	indent := len(body) - len(strings.TrimLeft(body, " "))
	for _, l := range strings.Split(rest, "\n") {
		if strings.TrimSpace(l) == "YAML" {
			break
		}
		lines = append(lines, strings.ReplaceAll(l[min(indent, len(l)):], "$RUNNER_TEMP", "/tmp"))
	}
	return []byte(strings.ReplaceAll(strings.Join(lines, "\n"), "$CI_BUILDS_DIR", "/tmp"))
}

func TestCIExamplesLint(t *testing.T) {
	gha, _ := os.ReadFile("ci/github-actions.yml")
	if out, err := exec.Command(tool(t, "actionlint"), "ci/github-actions.yml").CombinedOutput(); err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}
	validateConfig(t, "ci/github-actions.yml#broker.yaml", heredocConfig(t, string(gha)))
	if out, err := exec.Command(tool(t, "actionlint"), "ci/github-actions-token.yml").CombinedOutput(); err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}
	if out, err := exec.Command(tool(t, "actionlint"), "ci/github-actions-action.yml", "../.github/workflows/ci.yml", "../.github/workflows/release.yml").CombinedOutput(); err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}
	for _, f := range []string{"ci/github-actions.yml", "ci/github-actions-token.yml", "ci/gitlab-ci.yml"} {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), "@latest") || !strings.Contains(string(b), "sha256sum -c") {
			t.Errorf("%s installs an unpinned or unverified secrets-broker", f)
		}
	}
	ghaToken, _ := os.ReadFile("ci/github-actions-token.yml")
	validateConfig(t, "ci/github-actions-token.yml#broker.yaml", heredocConfig(t, string(ghaToken)))
	gl, _ := os.ReadFile("ci/gitlab-ci.yml")
	var pipeline map[string]any
	if err := yaml.Unmarshal(gl, &pipeline); err != nil {
		t.Fatal(err)
	}
	job, ok := pipeline["deploy"].(map[string]any)
	stages, _ := pipeline["stages"].([]any)
	if !ok || job["stage"] != "deploy" || len(stages) != 1 || stages[0] != "deploy" {
		t.Fatalf("gitlab-ci.yml: the deploy job or its stage is missing: %v", pipeline)
	}
	script, _ := job["script"].([]any)
	if len(script) == 0 || !strings.Contains(script[len(script)-1].(string), "secrets-broker exec") {
		t.Fatalf("gitlab-ci.yml: script %v", script)
	}
	validateConfig(t, "ci/gitlab-ci.yml#broker.yaml", heredocConfig(t, string(gl)))
}

// The examples work as written or fail saying what to create (issue 18):
// the systemd config, validated as written on a machine without the group
// "secrets", names the command that creates it; a pod whose config reads
// Vault's CA mounts its ConfigMap as required (an optional one let the
// init container crash-loop on a missing file); the init-only example says
// that nobody renews its dynamic lease; the sidecar shares no process
// namespace by default.
func TestExamplesFailSayingWhatToCreate(t *testing.T) {
	text, _ := os.ReadFile("systemd/broker.yaml")
	cfg, err := config.Parse(text, "systemd/broker.yaml", "/")
	if err == nil {
		_, err = broker.New(cfg).Prepare()
	}
	if err != nil && !strings.Contains(err.Error(), "groupadd") {
		t.Errorf("systemd/broker.yaml without its group: %v; want the error to say how to create it", err)
	}
	unit, _ := os.ReadFile("systemd/secrets-broker.service")
	for _, want := range []string{"groupadd --system secrets", "PathChanged="} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the systemd unit's notes lack %q", want)
		}
	}

	cm, _ := os.ReadFile("kubernetes/configmap.yaml")
	for _, name := range []string{"deployment-init.yaml", "deployment-sidecar.yaml"} {
		text, err := os.ReadFile("kubernetes/" + name)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Spec struct {
				Template struct {
					Spec struct {
						ShareProcessNamespace bool `yaml:"shareProcessNamespace"`
						Volumes               []struct {
							Name      string `yaml:"name"`
							ConfigMap *struct {
								Optional *bool `yaml:"optional"`
							} `yaml:"configMap"`
						} `yaml:"volumes"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := yaml.Unmarshal(text, &d); err != nil {
			t.Fatal(err)
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == "vault-ca" && strings.Contains(string(cm), "ca_cert:") && v.ConfigMap != nil && v.ConfigMap.Optional != nil && *v.ConfigMap.Optional {
				t.Errorf("%s: the config always reads Vault's CA, but its ConfigMap is optional", name)
			}
		}
		if d.Spec.Template.Spec.ShareProcessNamespace {
			t.Errorf("%s shares the process namespace by default", name)
		}
		if name == "deployment-init.yaml" && strings.Contains(string(cm), "database/creds") && !strings.Contains(string(text), "NOT\n# renewed") {
			t.Errorf("%s renders a dynamic lease without saying nobody renews it", name)
		}
	}
}
