// Package examples_test checks the deployment examples against real
// components: the Kubernetes manifests with a real API server (server-side
// dry-run, the restricted Pod Security Standard enforced), and every
// broker config they carry with the broker's own validation.
package examples_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/broker"
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
		"deployment.apps/payments-init created (server dry run)", "deployment.apps/payments-sidecar created (server dry run)"} {
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

// The config in the ConfigMap is a valid broker config.
func TestKubernetesConfigMapValidates(t *testing.T) {
	data, err := os.ReadFile("kubernetes/configmap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatal(err)
	}
	cfg, err := broker.ParseConfig([]byte(cm.Data["broker.yaml"]), "configmap.yaml#broker.yaml", "/etc/secrets-broker")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := broker.New(cfg).Prepare(); err != nil {
		t.Fatal(err)
	}
}
