// Package freeport owns picking a free TCP port on 127.0.0.1 for the
// servers tests start (Vault, etcd, kube-apiserver).
package freeport

import "net"

// Loopback returns a port on 127.0.0.1 that was free a moment ago.
func Loopback() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
