// Package loopback owns the one answer to "does this host name this
// machine?": the test every plain-http and skip-verify exception (Vault,
// token endpoints, KMS endpoints, the metrics listener, migrate's notes)
// makes before it allows what it refuses elsewhere.
package loopback

import "net"

// Host reports whether host (a URL's Hostname, or a listen address's
// host) is localhost or a loopback IP.
func Host(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
