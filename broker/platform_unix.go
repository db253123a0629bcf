//go:build unix

package broker

import (
	"os"
	"strconv"
	"strings"
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

// childForwardedSignals are passed on to the command run supervises
// (SIGHUP is not: it reloads the broker's config).
var childForwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// processUID is the real uid of process pid, from /proc (Linux); known is
// false where there is no /proc or the process is gone.
func processUID(pid int) (uid int, known bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if n, err := strconv.Atoi(f[0]); err == nil {
					return n, true
				}
			}
		}
	}
	return 0, false
}
