//go:build unix

package broker

import (
	"io/fs"
	"os"
	"syscall"
)

// notifySignals are the signals a notify action may send.
var notifySignals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

const notifySignalNames = "HUP, INT, QUIT, TERM, USR1, USR2"

// forwardedSignals are passed on to exec's child.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

func signalProcess(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// fileOwner returns a file's owner and group.
func fileOwner(info fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

// ownershipSupported: files have a POSIX owner and group here.
const ownershipSupported = true

// childForwardedSignals are passed on to the command run supervises
// (SIGHUP is not: it reloads the broker's config).
var childForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}
