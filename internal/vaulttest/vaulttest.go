// Package vaulttest runs a real HashiCorp Vault dev server for tests: the
// binary built from the Go module proxy by scripts/vault-bin.sh (cached per
// machine), started on 127.0.0.1 with a random free port and a random root
// token, stopped when the test ends. When the server cannot be had, tests
// fail; they never skip.
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/freeport"
	"github.com/secrets-broker/secrets-broker/internal/procgroup"

	"github.com/hashicorp/vault/api"
)

// EnvBinary overrides where the Vault binary is found.
const EnvBinary = "SECRETS_BROKER_VAULT_BIN"

// Server is a running Vault dev server.
type Server struct {
	Addr  string // http://127.0.0.1:PORT
	Token string // root token
	Bin   string // path of the vault binary
	// CACert is the CA file of a TLS server (LaunchTLS), "" otherwise.
	CACert string

	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   sync.Mutex
	done chan struct{}
}

// Binary returns the path of the Vault binary: $SECRETS_BROKER_VAULT_BIN, or
// what scripts/vault-bin.sh prints (it builds Vault the first time).
func Binary() (string, error) { return scriptBinary(EnvBinary, "vault-bin.sh") }

// EnvConsulTemplate overrides the consul-template binary the side-by-side
// template tests use.
const EnvConsulTemplate = "SECRETS_BROKER_CONSUL_TEMPLATE_BIN"

// ConsulTemplateBinary returns the path of consul-template:
// $SECRETS_BROKER_CONSUL_TEMPLATE_BIN, or what
// scripts/consul-template-bin.sh prints (it builds it the first time).
func ConsulTemplateBinary() (string, error) {
	return scriptBinary(EnvConsulTemplate, "consul-template-bin.sh")
}

func scriptBinary(env, script string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(filepath.Join(root, "scripts", script)).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("scripts/%s failed: %v\n%s", script, err, ee.Stderr)
		}
		return "", fmt.Errorf("scripts/%s: %w", script, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "scripts", "vault-bin.sh")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the module root with scripts/vault-bin.sh")
		}
		dir = parent
	}
}

// Launch starts a dev server; call Stop when done.
func Launch(ctx context.Context) (*Server, error) { return launch(ctx, "") }

// LaunchTLS starts a dev server with TLS (Vault's -dev-tls): its CA, server
// certificate and key are written to certDir as vault-ca.pem, vault-cert.pem
// and vault-key.pem.
func LaunchTLS(ctx context.Context, certDir string) (*Server, error) { return launch(ctx, certDir) }

func launch(ctx context.Context, certDir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := launchOnce(ctx, bin, certDir)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func launchOnce(ctx context.Context, bin, certDir string) (*Server, error) {
	port, err := freeport.Loopback()
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	home, err := os.MkdirTemp("", "vaulttest-home-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		Addr:  fmt.Sprintf("http://127.0.0.1:%d", port),
		Token: "root-" + hex.EncodeToString(tok),
		Bin:   bin,
		log:   &bytes.Buffer{},
		done:  make(chan struct{}),
	}
	s.cmd = exec.Command(bin, "server", "-dev",
		"-dev-root-token-id="+s.Token,
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", port),
		"-dev-no-store-token",
		"-log-level=warn")
	if certDir != "" {
		s.Addr = strings.Replace(s.Addr, "http://", "https://", 1)
		s.cmd.Args = append(s.cmd.Args, "-dev-tls", "-dev-tls-cert-dir="+certDir)
		s.CACert = filepath.Join(certDir, "vault-ca.pem")
	}
	s.cmd.Env = append(filteredEnv(), "HOME="+home, "VAULT_DISABLE_MLOCK=true")
	s.cmd.Stdout = lockedWriter{s}
	s.cmd.Stderr = lockedWriter{s}
	procgroup.Own(s.cmd)
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(home)
		return nil, fmt.Errorf("cannot start %s: %w", bin, err)
	}
	go func() { s.cmd.Wait(); os.RemoveAll(home); close(s.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.done:
			return nil, fmt.Errorf("vault dev server exited during start-up:\n%s", s.Log())
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := healthClient.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("vault dev server at %s not healthy after 60 s:\n%s", s.Addr, s.Log())
		}
	}
}

// healthClient only asks whether the server is up; it does not check the
// dev server's self-signed certificate.
var healthClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// filteredEnv drops VAULT_* so the developer's own Vault settings never leak in.
func filteredEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			out = append(out, kv)
		}
	}
	return out
}

type lockedWriter struct{ s *Server }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.log.Len() < 1<<20 {
		w.s.log.Write(p)
	}
	return len(p), nil
}

// Log returns what the server printed.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Stop ends the server (SIGTERM, then SIGKILL after 10 s).
func (s *Server) Stop() {
	if s.cmd.Process == nil {
		return
	}
	procgroup.Signal(s.cmd, false)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		procgroup.Signal(s.cmd, true)
		<-s.done
	}
}

// StartTLS is Start with TLS; see LaunchTLS.
func StartTLS(t testing.TB, certDir string) *Server {
	t.Helper()
	s, err := LaunchTLS(t.Context(), certDir)
	if err != nil {
		t.Fatalf("a real Vault dev server is required and could not start: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Start launches a dev server for one test and stops it at cleanup. It fails
// the test, never skips it, when the server cannot start.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch(t.Context())
	if err != nil {
		t.Fatalf("a real Vault dev server is required and could not start: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Client returns a root client of the server.
func (s *Server) Client(t testing.TB) *api.Client {
	t.Helper()
	c, err := s.NewClient(s.Token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewClient returns a client of the server with token.
func (s *Server) NewClient(token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	return c, nil
}

// Run runs the vault CLI against the server (VAULT_ADDR and VAULT_TOKEN
// set), failing the test on error, and returns its standard output.
func (s *Server) Run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.Bin, args...)
	cmd.Env = append(filteredEnv(), "VAULT_ADDR="+s.Addr, "VAULT_TOKEN="+s.Token)
	if s.CACert != "" {
		cmd.Env = append(cmd.Env, "VAULT_CACERT="+s.CACert)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// DatabaseRole enables Vault's database engine against the PostgreSQL at
// 127.0.0.1:port (superuser user/password) and creates role "app", whose
// credentials are PostgreSQL logins valid until their lease expires:
// database/creds/app.
func (s *Server) DatabaseRole(t testing.TB, port int, user, password, defaultTTL, maxTTL string) {
	t.Helper()
	if err := s.ConfigureDatabase(port, user, password, defaultTTL, maxTTL); err != nil {
		t.Fatal(err)
	}
}

// ConfigureDatabase is DatabaseRole for programs (the benches).
func (s *Server) ConfigureDatabase(port int, user, password, defaultTTL, maxTTL string) error {
	root, err := s.NewClient(s.Token)
	if err != nil {
		return err
	}
	if err := root.Sys().Mount("database", &api.MountInput{Type: "database"}); err != nil {
		return fmt.Errorf("enable the database engine: %w", err)
	}
	if _, err := root.Logical().Write("database/config/pg", map[string]any{
		"plugin_name":    "postgresql-database-plugin",
		"connection_url": fmt.Sprintf("postgresql://{{username}}:{{password}}@127.0.0.1:%d/postgres?sslmode=disable", port),
		"username":       user,
		"password":       password,
		"allowed_roles":  "app",
	}); err != nil {
		return err
	}
	_, err = root.Logical().Write("database/roles/app", map[string]any{
		"db_name":             "pg",
		"creation_statements": `CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';`,
		"default_ttl":         defaultTTL,
		"max_ttl":             maxTTL,
	})
	return err
}
