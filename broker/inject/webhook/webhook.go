// Package webhook owns the injector's admission endpoint: it reads an
// AdmissionReview from the API server (bounded, checked in shape before
// anything else), asks package inject what to add to the pod, and answers
// with a JSON patch, a refusal naming the annotation, or nothing; and it
// serves that over TLS with a certificate re-read when it is rotated.
package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/secrets-broker/secrets-broker/broker/inject"
	"github.com/secrets-broker/secrets-broker/internal/certreload"
)

// MaxReviewLen bounds an AdmissionReview: the API server's own bound on
// an object (3 MiB) and room for the review around it.
const MaxReviewLen = 4 << 20

// MaxWarnings and MaxWarningLen keep the answer's warnings within what
// the API server passes on.
const (
	MaxWarnings   = 16
	MaxWarningLen = 240
)

// Handler answers AdmissionReviews for pods.
type Handler struct {
	Options inject.Options
	Log     *slog.Logger
}

// ServeHTTP reads one review and answers it. A request that is not a
// review of a pod gets 400 and no review; a pod whose annotations cannot be
// honoured gets a review refusing it, naming the annotation.
func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "Content-Type must be application/json", http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxReviewLen+1))
	if err != nil {
		http.Error(w, "cannot read the request", http.StatusBadRequest)
		return
	}
	if len(body) > MaxReviewLen {
		http.Error(w, fmt.Sprintf("an AdmissionReview is at most %d bytes", MaxReviewLen), http.StatusRequestEntityTooLarge)
		return
	}
	start := time.Now()
	review, err := Review(body, h.Options)
	if err != nil {
		h.log().Warn("injector: not an AdmissionReview of a pod; answered 400", "error", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	out, err := json.Marshal(review.AdmissionReview)
	if err != nil {
		http.Error(w, "cannot write the answer", http.StatusInternalServerError)
		return
	}
	resp := review.Response
	h.log().Info("injector: answered", "uid", string(resp.UID), "allowed", resp.Allowed, "patched", len(resp.Patch) > 0,
		"warnings", len(resp.Warnings), "took", time.Since(start).String())
	// A controller (a Deployment's ReplicaSet) creates most pods and
	// nobody reads the warnings it gets: the injector's log says them too,
	// with where they came from.
	for _, w := range resp.Warnings {
		h.log().Warn("injector: "+w, "uid", string(resp.UID), "pod", review.podName)
	}
	if !resp.Allowed && resp.Result != nil {
		h.log().Warn("injector: pod refused", "uid", string(resp.UID), "pod", review.podName, "reason", resp.Result.Message)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

func (h Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// Review decodes an AdmissionReview and answers it. Only an input that is
// not a review of a pod is an error.
func Review(body []byte, opts inject.Options) (*Answer, error) {
	var in admissionv1.AdmissionReview
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("the body is not an AdmissionReview: %w", err)
	}
	if dec.More() {
		return nil, errors.New("the body holds more than one JSON value")
	}
	if in.APIVersion != "admission.k8s.io/v1" || in.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("apiVersion %q kind %q: want admission.k8s.io/v1 AdmissionReview", in.APIVersion, in.Kind)
	}
	req := in.Request
	if req == nil || req.UID == "" {
		return nil, errors.New("the AdmissionReview has no request or no request uid")
	}
	if len(req.UID) > 128 {
		return nil, errors.New("the request uid is longer than 128 bytes")
	}
	out := &Answer{AdmissionReview: &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true},
	}}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		// Not ours to change (the webhook's rules send pods on CREATE):
		// allowed as it is.
		return out, nil
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return nil, fmt.Errorf("the request's object is not a pod: %w", err)
	}
	out.podName = req.Namespace + "/" + pod.Name
	if pod.Name == "" {
		out.podName = req.Namespace + "/" + pod.GenerateName + "*"
	}
	res, err := inject.Mutate(&pod, opts)
	if err != nil {
		var ae *inject.Error
		msg := "secrets-broker injector: " + err.Error()
		if !errors.As(err, &ae) {
			msg = "secrets-broker injector: cannot inject: " + err.Error()
		}
		out.Response.Allowed = false
		out.Response.Result = &metav1.Status{Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest, Message: msg}
		return out, nil
	}
	patch, err := res.JSON()
	if err != nil {
		return nil, fmt.Errorf("writing the patch: %w", err)
	}
	if len(patch) > 0 {
		pt := admissionv1.PatchTypeJSONPatch
		out.Response.Patch, out.Response.PatchType = patch, &pt
	}
	for i, w := range res.Warnings {
		if i == MaxWarnings {
			out.Response.Warnings = append(out.Response.Warnings, fmt.Sprintf("secrets-broker: %d more warnings not shown", len(res.Warnings)-i))
			break
		}
		w = "secrets-broker: " + w
		if len(w) > MaxWarningLen {
			w = strings.ToValidUTF8(w[:MaxWarningLen-3], "") + "..."
		}
		out.Response.Warnings = append(out.Response.Warnings, w)
	}
	return out, nil
}

// Answer is the review sent back, and the pod it was about (for the log).
type Answer struct {
	*admissionv1.AdmissionReview
	podName string
}

// MaxConcurrent bounds the reviews read and answered at once: each may
// hold a 4 MiB body and its decoded pod, so a flood of slow uploads cannot
// push the injector past its memory limit (and, with failurePolicy: Fail,
// stop pod creation in the cluster). A review that waits over a second for
// a slot gets 503; the API server's call fails and is retried by the
// controller that made the pod.
const MaxConcurrent = 4

func bounded(next http.Handler, n int) http.Handler {
	slots := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		case <-t.C:
			http.Error(w, "the injector is busy; retry", http.StatusServiceUnavailable)
		case <-r.Context().Done():
		}
	})
}

// Server is the injector's HTTPS server.
type Server struct {
	Addr              string
	CertFile, KeyFile string
	Handler           Handler
}

// Run serves /mutate (the webhook) and /healthz until ctx ends. The
// certificate and key are read again when they change (a Secret updated
// by cert-manager or by hand), without a restart.
func (s Server) Run(ctx context.Context, ready func(addr string)) error {
	pair := certreload.New(s.CertFile, s.KeyFile)
	if _, err := pair.Load(); err != nil {
		return fmt.Errorf("injector TLS: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mutate", bounded(s.Handler, MaxConcurrent))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: pair.ServerCertificate},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       5 * time.Second, // the API server waits timeoutSeconds: 5 at most
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.Handler.log().Handler(), slog.LevelWarn),
	}
	l, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("injector: cannot listen on %s: %w", s.Addr, err)
	}
	if ready != nil {
		ready(l.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(l, "", "") }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(shut)
		return nil
	case err := <-errc:
		return fmt.Errorf("injector: %w", err)
	}
}
