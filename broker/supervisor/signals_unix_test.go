//go:build unix

package supervisor_test

import (
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/supervisor"
)

// Stop and user signals always reach the command; SIGHUP reaches it only
// when the caller does not keep SIGHUP for its own reload (run --exec's
// daemon does, exec does not).
func TestSignalsPassedOnKeepHUPForTheDaemon(t *testing.T) {
	for _, withHUP := range []bool{false, true} {
		got := supervisor.Signals(withHUP)
		for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2} {
			if !slices.Contains(got, s) {
				t.Errorf("Signals(%v) does not pass on %v", withHUP, s)
			}
		}
		if slices.Contains(got, os.Signal(syscall.SIGHUP)) != withHUP {
			t.Errorf("Signals(%v) = %v: SIGHUP passed on should be %v", withHUP, got, withHUP)
		}
	}
}
