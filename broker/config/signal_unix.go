//go:build unix

package config

import "syscall"

// notifySignals are the signals a notify action may send.
var notifySignals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2,
}

const notifySignalNames = "HUP, INT, QUIT, TERM, USR1, USR2"
