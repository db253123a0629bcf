package vault_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// The broker's Vault token never crosses a network in clear or to a
// server whose certificate goes unchecked: plain http and
// VAULT_SKIP_VERIFY are refused for an address that is not loopback, with
// what to do instead; vault.insecure_http allows plain http with a
// warning at every start.
func TestPlainHTTPAndSkipVerifyAreRefusedOffLoopback(t *testing.T) {
	for _, addr := range []string{"http://127.0.0.1:8200", "http://localhost:8200", "http://[::1]:8200", "https://vault.example.com:8200", "unix:///run/vault.sock"} {
		if err := vault.CheckTransport(addr, false, "", nil); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	err := vault.CheckTransport("http://vault.example.com:8200", false, "", nil)
	if err == nil || fail.KindOf(err) != fail.Usage || !strings.Contains(err.Error(), "plain HTTP") || !strings.Contains(err.Error(), "insecure_http: true") || !strings.Contains(err.Error(), "https://") {
		t.Errorf("plain http off loopback: %v", err)
	}
	if err := vault.CheckTransport("http://user:pw@vault.example.com:8200", false, "", nil); err == nil || strings.Contains(err.Error(), "pw@") {
		t.Errorf("the refusal shows the URL's password: %v", err)
	}
	var logs bytes.Buffer
	if err := vault.CheckTransport("http://vault.example.com:8200", true, "", slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Errorf("insecure_http: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "insecure_http") {
		t.Errorf("insecure_http logs no warning: %q", logs.String())
	}
	err = vault.CheckTransport("https://vault.example.com:8200", false, "true", nil)
	if err == nil || fail.KindOf(err) != fail.Usage || !strings.Contains(err.Error(), "VAULT_SKIP_VERIFY") || !strings.Contains(err.Error(), "ca_cert") {
		t.Errorf("VAULT_SKIP_VERIFY off loopback: %v", err)
	}
	if err := vault.CheckTransport("https://127.0.0.1:8200", false, "1", nil); err != nil {
		t.Errorf("VAULT_SKIP_VERIFY on loopback: %v", err)
	}
}
