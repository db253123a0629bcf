package inject_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/inject"
)

// Annotations as lines KEY=VALUE (\n in a value written \\n): any of them
// either refuse the pod or give a config the broker loads; never a panic.
func FuzzAnnotations(f *testing.F) {
	f.Add("vault.hashicorp.com/agent-inject=true\nvault.hashicorp.com/role=web\nvault.hashicorp.com/agent-inject-secret-db=secret/data/db")
	f.Add("vault.hashicorp.com/agent-inject=true\nvault.hashicorp.com/role=web\nvault.hashicorp.com/agent-inject-secret-a=x\nvault.hashicorp.com/agent-inject-template-a={{ with secret \"x\" }}{{ .Data }}{{ end }}\nvault.hashicorp.com/agent-inject-file-a=sub/a.txt\nvault.hashicorp.com/agent-inject-perms-a=0640")
	f.Add("secrets-broker.io/inject=true\nsecrets-broker.io/role=r\nsecrets-broker.io/secret-a=vault:secret/data/a#b\nsecrets-broker.io/template-out.conf=a={{ secret \"a\" }}")
	f.Add("vault.hashicorp.com/agent-inject=true\nvault.hashicorp.com/role=web\nvault.hashicorp.com/agent-inject-secret-db=secret/data/db\nvault.hashicorp.com/agent-template-left-delim-db=[[\nvault.hashicorp.com/agent-template-right-delim-db=]]")
	f.Fuzz(func(t *testing.T, text string) {
		ann := map[string]string{}
		for _, line := range strings.Split(text, "\n") {
			k, v, _ := strings.Cut(line, "=")
			ann[k] = strings.ReplaceAll(v, `\n`, "\n")
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: ann}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}
		res, err := inject.Mutate(pod, opts)
		if err != nil || len(res.Patch) == 0 {
			return
		}
		if _, err := config.Parse(res.Config, "injected", t.TempDir()); err != nil {
			t.Fatalf("annotations the injector accepted give a config the broker refuses: %v\n%s", err, res.Config)
		}
	})
}
