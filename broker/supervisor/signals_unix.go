//go:build unix

package supervisor

import (
	"os"
	"syscall"
)

// Signals are the signals a command's supervisor passes on to it; SIGHUP
// among them only when withHUP (a daemon keeps SIGHUP to reload its own
// config).
func Signals(withHUP bool) []os.Signal {
	s := []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}
	if withHUP {
		s = append(s, syscall.SIGHUP)
	}
	return s
}
