//go:build unix

package fail

import (
	"errors"
	"syscall"
)

// isFileSystemErrno reports a full disk or quota, a read-only file system
// or a file over RLIMIT_FSIZE.
func isFileSystemErrno(err error) bool {
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EFBIG} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
