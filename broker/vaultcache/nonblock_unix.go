//go:build unix

package vaultcache

import "syscall"

// nonBlocking opens an entry without waiting on a FIFO planted in its
// place (readlimit then refuses anything but a regular file).
const nonBlocking = syscall.O_NONBLOCK
