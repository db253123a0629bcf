package examples_test

import (
	"encoding/base64"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/k8stest"
	"github.com/secrets-broker/secrets-broker/internal/testca"
)

// The injector's manifests and its Helm chart pass the real API server's
// dry-run in a namespace enforcing the restricted profile, with no
// warning; the chart lints, refuses to render without a way to trust the
// webhook, and renders the cert-manager path.
func TestInjectorManifestsAndChart(t *testing.T) {
	k := k8stest.Start(t)
	k.Must(t, http.MethodPost, "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{
		"name": "secrets-broker-system", "labels": map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}}, nil)
	out, err := k.Kubectl("apply", "--dry-run=server", "-k", "kubernetes/injector")
	if err != nil {
		t.Fatalf("kubectl apply --dry-run=server -k kubernetes/injector: %v\n%s", err, out)
	}
	for _, want := range []string{"serviceaccount/secrets-broker-injector created", "deployment.apps/secrets-broker-injector created",
		"poddisruptionbudget.policy/secrets-broker-injector created", "service/secrets-broker-injector created",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/secrets-broker-injector created"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		// The namespace the test made first is applied over: kubectl's own note.
		if strings.Contains(strings.ToLower(line), "warning") && !strings.Contains(line, "namespaces/secrets-broker-system is missing the kubectl.kubernetes.io/last-applied-configuration") {
			t.Errorf("the API server warned:\n%s", out)
		}
	}

	helm := tool(t, "helm")
	chart := filepath.Join("helm", "secrets-broker-injector")
	ca := base64.StdEncoding.EncodeToString(testca.New(t, "webhook-ca").CertPEM)
	if out, err := exec.Command(helm, "lint", chart, "--set", "tls.caBundle="+ca).CombinedOutput(); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	rendered, err := exec.Command(helm, "template", "sb", chart, "-n", "secrets-broker-system", "--set", "tls.caBundle="+ca,
		"--set", "image.digest=sha256:"+strings.Repeat("a", 64)).Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	f := filepath.Join(t.TempDir(), "chart.yaml")
	os.WriteFile(f, rendered, 0o600)
	out, err = k.Kubectl("apply", "--dry-run=server", "-f", f)
	if err != nil || strings.Contains(strings.ToLower(out), "warning") {
		t.Fatalf("the chart's objects: %v\n%s\n%s", err, out, rendered)
	}
	for _, want := range []string{"secrets-broker@sha256:aaaa", "--vault-address=https://vault.vault.svc:8200", "values:\n            - secrets-broker-system\n            - kube-system\n            - cert-manager"} {
		if !strings.Contains(string(rendered), want) {
			t.Errorf("rendered chart lacks %q", want)
		}
	}
	// By default the image is the release's tag (vX.Y.Z, as the release
	// workflow pushes it), not the chart's bare version.
	plain, err := exec.Command(helm, "template", "sb", chart, "--set", "tls.caBundle="+ca).Output()
	if err != nil || !regexp.MustCompile(`image: "ghcr\.io/secrets-broker/secrets-broker:v\d+\.\d+\.\d+"\n`).Match(plain) ||
		!regexp.MustCompile(`--image=ghcr\.io/secrets-broker/secrets-broker:v\d+\.\d+\.\d+\n`).Match(plain) {
		t.Errorf("the chart's default image is not a release tag: %v\n%s", err, plain)
	}
	// No way to trust the webhook: refused at render, saying what to set.
	if out, err := exec.Command(helm, "template", "sb", chart).CombinedOutput(); err == nil || !strings.Contains(string(out), "set tls.caBundle") {
		t.Errorf("a chart without caBundle or cert-manager rendered: %v\n%s", err, out)
	}
	cm, err := exec.Command(helm, "template", "sb", chart, "-n", "sbi", "--set", "tls.certManager.enabled=true").Output()
	if err != nil || !strings.Contains(string(cm), "kind: Certificate") || !strings.Contains(string(cm), "cert-manager.io/inject-ca-from: sbi/secrets-broker-injector") {
		t.Errorf("the cert-manager path: %v\n%s", err, cm)
	}
}
