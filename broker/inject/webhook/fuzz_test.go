package webhook_test

import (
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/inject/webhook"
)

// Any body: an error or an answer to the same uid, never a panic.
func FuzzReview(f *testing.F) {
	f.Add([]byte(review("u-1", annotatedPod)))
	f.Add([]byte(review("u-2", `{"metadata":{"annotations":{"secrets-broker.io/inject":"true","secrets-broker.io/role":"r","secrets-broker.io/secret-a":"vault:secret/data/a#b"}},"spec":{"containers":[{"name":"app"}],"initContainers":[{"name":"x"}],"volumes":[{"name":"v"}]}}`)))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","kind":{"kind":"Pod"},"operation":"CREATE","object":null}}`))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > webhook.MaxReviewLen {
			return
		}
		out, err := webhook.Review(body, opts)
		if err != nil {
			return
		}
		if out.Response == nil || out.Response.UID == "" {
			t.Fatalf("an answer without the request's uid: %+v", out)
		}
	})
}
