package loopback_test

import (
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/loopback"
)

func TestHost(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true,
		"": false, "vault.example.com": false, "10.0.0.1": false, "localhost.example.com": false, "::": false} {
		if got := loopback.Host(host); got != want {
			t.Errorf("Host(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestIP(t *testing.T) {
	for host, want := range map[string]bool{"localhost": false, "127.0.0.1": true, "::1": true, "10.0.0.1": false, "": false} {
		if got := loopback.IP(host); got != want {
			t.Errorf("IP(%q) = %v, want %v", host, got, want)
		}
	}
}
