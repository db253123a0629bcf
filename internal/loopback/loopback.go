// Package loopback owns the one answer to "does this host name this
// machine?": the test every plain-http and skip-verify exception (Vault,
// token endpoints, KMS endpoints, the metrics listener, migrate's notes)
// makes before it allows what it refuses elsewhere.
package loopback

import "net"

// Host reports whether host (a URL's Hostname, or a listen address's
// host) is localhost or a loopback IP.
func Host(host string) bool {
	return host == "localhost" || IP(host)
}

// IP reports whether host is a loopback IP literal: the stricter test
// where the name "localhost" is not the broker's to trust (in an injected
// pod, the pod's hostAliases decide what it resolves to).
func IP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
