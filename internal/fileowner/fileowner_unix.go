//go:build unix

package fileowner

import (
	"io/fs"
	"syscall"
)

// Supported: files have a POSIX owner and group here.
const Supported = true

// Of returns info's owner and group; ok is false when info carries none.
func Of(info fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}
