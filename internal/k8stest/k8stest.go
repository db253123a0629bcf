// Package k8stest runs a real Kubernetes control plane for tests: etcd and
// kube-apiserver (built from the Go module proxy by scripts/k8s-bin.sh,
// cached per machine) on 127.0.0.1 at free ports,
// with a throw-away PKI made here. There is no kubelet and no
// controller-manager: what the tests need is the API (ServiceAccounts,
// TokenRequest, TokenReview, server-side dry-run). When the control plane
// cannot start, tests fail; they never skip.
package k8stest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/freeport"
	"github.com/secrets-broker/secrets-broker/internal/procgroup"
)

// EnvBinDir overrides the directory holding kube-apiserver, kubectl and
// etcd.
const EnvBinDir = "SECRETS_BROKER_K8S_BIN"

// Server is a running control plane.
type Server struct {
	URL        string // https://127.0.0.1:PORT
	CACert     []byte // PEM of the CA that signed the serving certificate
	Kubeconfig string // admin kubeconfig for kubectl
	KubectlBin string // path of kubectl
	// Started is how long etcd and the API server took to become ready.
	Started time.Duration

	token  string
	client *http.Client
	dir    string
	procs  []*exec.Cmd
}

// BinDir returns the directory with kube-apiserver, kubectl and etcd:
// $SECRETS_BROKER_K8S_BIN, or what scripts/k8s-bin.sh prints.
func BinDir() (string, error) {
	if p := os.Getenv(EnvBinDir); p != "" {
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		script := filepath.Join(dir, "scripts", "k8s-bin.sh")
		if _, err := os.Stat(script); err == nil {
			out, err := exec.Command(script).Output()
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return "", fmt.Errorf("scripts/k8s-bin.sh failed: %v\n%s", err, ee.Stderr)
				}
				return "", err
			}
			return strings.TrimSpace(string(out)), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find scripts/k8s-bin.sh above the working directory")
		}
		dir = parent
	}
}

// Start runs etcd and the API server until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start()
	if err != nil {
		t.Fatalf("k8stest: the Kubernetes control plane did not start: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func start() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	etcd := filepath.Join(bin, "etcd")
	if _, err := os.Stat(etcd); err != nil {
		return nil, fmt.Errorf("no etcd in %s (scripts/k8s-bin.sh builds it): %w", bin, err)
	}
	dir, err := os.MkdirTemp("", "k8stest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, KubectlBin: filepath.Join(bin, "kubectl")}
	fail := func(err error) (*Server, error) {
		logs := ""
		for _, name := range []string{"etcd.log", "apiserver.log"} {
			if b, e := os.ReadFile(filepath.Join(dir, name)); e == nil {
				logs += "\n--- " + name + " (tail) ---\n" + tail(string(b), 2000)
			}
		}
		s.Stop()
		return nil, fmt.Errorf("%w%s", err, logs)
	}
	if err := s.makePKI(); err != nil {
		return fail(err)
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freeport.Loopback(); err != nil {
			return fail(err)
		}
	}
	began := time.Now()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := s.run("etcd.log", etcd, "--name", "local", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "local="+peerURL, "--log-level", "warn"); err != nil {
		return fail(err)
	}
	if err := waitHTTP(http.DefaultClient, etcdURL+"/health", "", 30*time.Second); err != nil {
		return fail(fmt.Errorf("etcd: %w", err))
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	s.URL = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	if err := s.run("apiserver.log", filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers="+etcdURL, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[2]), "--endpoint-reconciler-type=none",
		"--tls-cert-file="+p("apiserver.crt"), "--tls-private-key-file="+p("apiserver.key"),
		"--client-ca-file="+p("ca.crt"), "--token-auth-file="+p("tokens.csv"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p("sa.pub"), "--service-account-signing-key-file="+p("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/12", "--authorization-mode=RBAC",
		"--enable-priority-and-fairness=false", "--profiling=false"); err != nil {
		return fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACert)
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if err := waitHTTP(s.client, s.URL+"/readyz", s.token, 180*time.Second); err != nil {
		return fail(fmt.Errorf("kube-apiserver: %w", err))
	}
	s.Started = time.Since(began)
	s.Kubeconfig = p("kubeconfig")
	kc := fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: %s\n    certificate-authority: %s\nusers:\n- name: admin\n  user:\n    token: %s\ncontexts:\n- name: local\n  context: {cluster: local, user: admin}\ncurrent-context: local\n", s.URL, p("ca.crt"), s.token)
	if err := os.WriteFile(s.Kubeconfig, []byte(kc), 0o600); err != nil {
		return fail(err)
	}
	return s, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (s *Server) run(logName, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(s.dir, logName))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	procgroup.Own(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cannot start %s: %w", bin, err)
	}
	s.procs = append(s.procs, cmd)
	return nil
}

func waitHTTP(c *http.Client, url, token string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answers %s", url, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", limit, last)
}

// Stop ends the API server, then etcd (in that order: an API server left
// without etcd hangs), and removes the data.
func (s *Server) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		cmd := s.procs[i]
		procgroup.Signal(cmd, false)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			procgroup.Signal(cmd, true)
			<-done
		}
	}
	s.procs = nil
	os.RemoveAll(s.dir)
}

// makePKI writes a CA, the API server's serving certificate (127.0.0.1 and
// the in-cluster names), the service-account signing key pair and a static
// admin token.
func (s *Server) makePKI() error {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "k8stest-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tok := make([]byte, 16)
	rand.Read(tok)
	s.token = hex.EncodeToString(tok)
	s.CACert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	keyPEM := func(k *ecdsa.PrivateKey) []byte {
		der, _ := x509.MarshalECPrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	saPub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	files := map[string][]byte{
		"ca.crt":        s.CACert,
		"apiserver.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}),
		"apiserver.key": keyPEM(srvKey),
		"sa.key":        keyPEM(saKey),
		"sa.pub":        pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}),
		"tokens.csv":    []byte(s.token + ",admin,admin-uid,system:masters\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Do sends an API request as the admin and decodes a JSON answer into out
// (when not nil). A status other than 2xx is an error with the body.
func (s *Server) Do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// Must is Do, failing the test on error.
func (s *Server) Must(t testing.TB, method, path string, body, out any) {
	t.Helper()
	if err := s.Do(t.Context(), method, path, body, out); err != nil {
		t.Fatal(err)
	}
}

// CreateServiceAccount creates namespace ns (if needed) and the service
// account name in it.
func (s *Server) CreateServiceAccount(t testing.TB, ns, name string) {
	t.Helper()
	err := s.Do(t.Context(), http.MethodPost, "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}, nil)
	if err != nil && !strings.Contains(err.Error(), "409") {
		t.Fatal(err)
	}
	s.Must(t, http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts", map[string]any{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": name}}, nil)
}

// Token asks the TokenRequest API for a projected service-account token
// with the audience (empty: the API server's own) and lifetime given.
func (s *Server) Token(t testing.TB, ns, sa, audience string, ttl time.Duration) string {
	t.Helper()
	var out struct {
		Status struct {
			Token string `json:"token"`
		} `json:"status"`
	}
	s.Must(t, http.MethodPost, "/api/v1/namespaces/"+ns+"/serviceaccounts/"+sa+"/token", map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"spec": tokenSpec(audience, ttl),
	}, &out)
	if out.Status.Token == "" {
		t.Fatal("TokenRequest returned no token")
	}
	return out.Status.Token
}

// Kubectl runs kubectl against the server as the admin.
func (s *Server) Kubectl(args ...string) (string, error) {
	cmd := exec.Command(s.KubectlBin, append([]string{"--kubeconfig", s.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func tokenSpec(audience string, ttl time.Duration) map[string]any {
	spec := map[string]any{"expirationSeconds": int(ttl.Seconds())}
	if audience != "" {
		spec["audiences"] = []string{audience}
	}
	return spec
}

// BindAuthDelegator lets the service account ns/sa review tokens (the
// system:auth-delegator cluster role), as Vault's token reviewer needs.
func (s *Server) BindAuthDelegator(t testing.TB, ns, sa string) {
	t.Helper()
	s.Must(t, http.MethodPost, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
		"metadata": map[string]any{"name": ns + "-" + sa + "-auth-delegator"},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
		"subjects": []map[string]any{{"kind": "ServiceAccount", "name": sa, "namespace": ns}},
	}, nil)
}
