//go:build !unix

package fileowner

import "io/fs"

// Supported: files have no POSIX owner and group here (Windows).
const Supported = false

// Of reports no owner.
func Of(fs.FileInfo) (uid, gid int, ok bool) { return 0, 0, false }
