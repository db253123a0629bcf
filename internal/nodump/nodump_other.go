//go:build !linux

package nodump

// Other systems have no per-process dumpable flag the broker can set; see
// docs/security.md for what that leaves.
func apply() error { return nil }

// Dumpable reports true: nothing hides the process.
func Dumpable() (bool, error) { return true, nil }
