package health

import "net"

// CountingLoopback makes l's connection bound count loopback clients too
// (tests have no other).
func CountingLoopback(l Listener) Listener {
	l.exempt = func(net.Addr) bool { return false }
	return l
}
