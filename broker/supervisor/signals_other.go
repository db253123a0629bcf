//go:build !unix

package supervisor

import "os"

// Signals are the signals a command's supervisor passes on to it: only an
// interrupt where there are no POSIX signals.
func Signals(bool) []os.Signal { return []os.Signal{os.Interrupt} }
