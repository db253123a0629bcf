//go:build unix

package templates

import "syscall"

// nonBlocking opens files so that a FIFO in the sandbox cannot make a
// render wait for a writer (readlimit then refuses it).
const nonBlocking = syscall.O_NONBLOCK
