package config

import (
	"strings"
	"syscall"
)

// ParseSignal reads a notify signal name: HUP or SIGHUP, any case. It
// reports false for a name this platform has no such signal for.
func ParseSignal(name string) (syscall.Signal, bool) {
	sig, ok := notifySignals[strings.TrimPrefix(strings.ToUpper(name), "SIG")]
	return sig, ok
}
