package vault_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/k8stest"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// Vault's kubernetes auth method against a real kube-apiserver: Vault
// reviews the broker's projected service-account token (TokenRequest, with
// audience and expiry) through the TokenReview API. A wrong audience and a
// deleted service account are refused with a clear error; a rotated token
// file is read at the next login.
func TestKubernetesAuthAgainstARealAPIServer(t *testing.T) {
	ctx := context.Background()
	k := k8stest.Start(t)
	t.Logf("etcd and kube-apiserver ready in %s", k.Started.Round(time.Millisecond))
	v := vaulttest.Start(t)
	const ns = "sb-auth"
	for _, sa := range []string{"app", "app2", "other", "vault-reviewer"} {
		k.CreateServiceAccount(t, ns, sa)
	}
	k.BindAuthDelegator(t, ns, "vault-reviewer")
	dir := t.TempDir()
	ca := writeFile(t, dir, "k8s-ca.pem", string(k.CACert))
	v.Run(t, "auth", "enable", "kubernetes")
	v.Run(t, "write", "auth/kubernetes/config", "kubernetes_host="+k.URL, "kubernetes_ca_cert=@"+ca,
		"token_reviewer_jwt="+k.Token(t, ns, "vault-reviewer", "", 24*time.Hour), "disable_local_ca_jwt=true")
	writePolicy(t, v, "reader", readPolicy)
	v.Run(t, "write", "auth/kubernetes/role/app", "bound_service_account_names=app,app2",
		"bound_service_account_namespaces="+ns, "audience=vault", "token_policies=reader", "ttl=10m")
	v.Run(t, "kv", "put", "secret/app", "password=from-k8s-auth")
	t.Setenv("VAULT_TOKEN", "")

	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(k.Token(t, ns, "app", "vault", 10*time.Minute)), 0o600)
	c := connect(t, v, vault.KubernetesAuth{Role: "app", TokenFile: tokenFile})
	s, err := c.Read(ctx, ref(t, "secret/data/app#password"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Value(); got != "from-k8s-auth" {
		t.Fatalf("read %q", got)
	}

	// The file is read at every login: rotated to app2's token, the next
	// login is app2.
	os.WriteFile(tokenFile, []byte(k.Token(t, ns, "app2", "vault", 10*time.Minute)), 0o600)
	auth, err := (vault.KubernetesAuth{Role: "app", TokenFile: tokenFile}).Login(ctx, c.API())
	if err != nil {
		t.Fatalf("login with the rotated token: %v", err)
	}
	if got := auth.Auth.Metadata["service_account_name"]; got != "app2" {
		t.Fatalf("the rotated token was not used: logged in as %q", got)
	}

	login := func(token string) error {
		os.WriteFile(tokenFile, []byte(token), 0o600)
		_, err := vault.Connect(ctx, vault.Config{Address: v.Addr, Auth: vault.KubernetesAuth{Role: "app", TokenFile: tokenFile}})
		return err
	}
	// A token for another audience, and one of a service account the role
	// does not bind, are refused, naming the method and Vault's reason.
	err = login(k.Token(t, ns, "app", "not-vault", 10*time.Minute))
	wantErr(t, err, fail.Denied, "kubernetes (role app)", "aud")
	err = login(k.Token(t, ns, "other", "vault", 10*time.Minute))
	wantErr(t, err, fail.Denied, "kubernetes (role app)", "service account name not authorized")
	if strings.Contains(err.Error(), "eyJ") {
		t.Fatal("token in error")
	}
	// A deleted service account: its token is refused once the API server
	// has dropped it from its authentication cache (up to 10 s).
	deleted := k.Token(t, ns, "app2", "vault", 10*time.Minute)
	k.Must(t, http.MethodDelete, "/api/v1/namespaces/"+ns+"/serviceaccounts/app2", nil, nil)
	deadline := time.Now().Add(60 * time.Second)
	for {
		err = login(deleted)
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	wantErr(t, err, fail.Denied, "kubernetes (role app)", "permission denied")
}
