// Package injector_test measures the Kubernetes injector through a real
// API server (bench/injector.sh runs it; it is a benchmark, which go test
// runs only when asked): the time each AdmissionReview takes inside the
// webhook (the "took" field it logs), the end-to-end time of a pod
// creation (server-side dry-run) that the webhook injects against the same
// creation in a namespace the webhook does not cover (the baseline, in the
// same run), and the injector process's memory (RSS and its anonymous
// part) when idle after serving them.
package injector_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/freeport"
	"github.com/secrets-broker/secrets-broker/internal/k8stest"
	"github.com/secrets-broker/secrets-broker/internal/testca"
)

func pod(i int) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": fmt.Sprintf("p%d", i), "annotations": map[string]string{
			"vault.hashicorp.com/agent-inject": "true", "vault.hashicorp.com/role": "web",
			"vault.hashicorp.com/agent-inject-secret-db":   "database/creds/web",
			"vault.hashicorp.com/agent-inject-template-db": "{{ with secret \"database/creds/web\" }}{{ .Data.username }}:{{ .Data.password }}{{ end }}",
			"vault.hashicorp.com/agent-inject-secret-api":  "secret/data/api"}},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "app:1"}}}}
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func status(pid int, field string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

func BenchmarkAdmission(b *testing.B) {
	n := 1000
	if s := os.Getenv("N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "secrets-broker")
	if out, err := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "../../cmd/secrets-broker").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	k := k8stest.Start(b)
	ca := testca.New(b, "bench-ca")
	crt, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.WritePair(b, "injector", crt, key)
	port, err := freeport.Loopback()
	if err != nil {
		b.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "injector", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--tls-cert", crt, "--tls-key", key,
		"--image", "secrets-broker:bench", "--vault-address", "https://vault.example:8200")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs.String(), "injector: serving"); {
		if time.Now().After(deadline) {
			b.Fatalf("the injector did not start:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	k.Must(b, http.MethodPost, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": map[string]any{"name": "bench"},
		"webhooks": []any{map[string]any{"name": "inject.secrets-broker.io", "admissionReviewVersions": []string{"v1"}, "sideEffects": "None", "failurePolicy": "Fail",
			"clientConfig":      map[string]any{"url": fmt.Sprintf("https://127.0.0.1:%d/mutate", port), "caBundle": base64.StdEncoding.EncodeToString(ca.CertPEM)},
			"rules":             []any{map[string]any{"apiGroups": []string{""}, "apiVersions": []string{"v1"}, "operations": []string{"CREATE"}, "resources": []string{"pods"}}},
			"namespaceSelector": map[string]any{"matchExpressions": []any{map[string]any{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": []string{"baseline"}}}}}},
	}, nil)
	for _, ns := range []string{"apps", "baseline"} {
		k.CreateServiceAccount(b, ns, "default")
	}
	create := func(ns string, i int) time.Duration {
		start := time.Now()
		var out map[string]any
		k.Must(b, http.MethodPost, "/api/v1/namespaces/"+ns+"/pods?dryRun=All", pod(i), &out)
		took := time.Since(start)
		spec, _ := out["spec"].(map[string]any)
		inits, _ := spec["initContainers"].([]any)
		if (ns == "apps") != (len(inits) == 1) {
			b.Fatalf("%s pod %d: %d init containers", ns, i, len(inits))
		}
		return took
	}
	// Warm both paths, then alternate so load affects both alike.
	create("apps", -1)
	create("baseline", -1)
	before := strings.Count(logs.String(), "injector: answered")
	var injected, baseline []time.Duration
	b.ResetTimer()
	for i := range n {
		injected = append(injected, create("apps", i))
		baseline = append(baseline, create("baseline", i))
	}
	b.StopTimer()
	var inside []time.Duration
	re := regexp.MustCompile(`injector: answered.* took=(\S+)`)
	for _, m := range re.FindAllStringSubmatch(logs.String(), -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			inside = append(inside, d)
		}
	}
	inside = inside[before:]
	if len(inside) != n {
		b.Fatalf("%d reviews logged, want %d", len(inside), n)
	}
	time.Sleep(10 * time.Second) // idle: what it holds between bursts
	pid := cmd.Process.Pid
	fmt.Printf("injector, %d pod creations through kube-apiserver (server-side dry-run):\n", n)
	fmt.Printf("  inside the webhook: p50 %s  p99 %s  max %s  (goal: p99 < 10ms)\n", pct(inside, .5), pct(inside, .99), pct(inside, 1))
	fmt.Printf("  pod creation, injected: p50 %s  p99 %s\n", pct(injected, .5), pct(injected, .99))
	fmt.Printf("  pod creation, not sent to the webhook (baseline): p50 %s  p99 %s\n", pct(baseline, .5), pct(baseline, .99))
	fmt.Printf("  injected/baseline: p50 %.2fx  p99 %.2fx\n", float64(pct(injected, .5))/float64(pct(baseline, .5)), float64(pct(injected, .99))/float64(pct(baseline, .99)))
	fmt.Printf("  injector idle after serving them: RSS %.1f MiB (anon %.1f, file %.1f)\n", status(pid, "VmRSS"), status(pid, "RssAnon"), status(pid, "RssFile"))
}
