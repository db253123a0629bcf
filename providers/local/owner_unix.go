//go:build unix

package local

import (
	"io/fs"
	"syscall"
)

// owner is the file's owner (uid).
func owner(info fs.FileInfo) (int, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
