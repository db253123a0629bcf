//go:build !unix

package local

import "io/fs"

// owner: no POSIX owner here; the file's ACL is the operator's to set.
func owner(fs.FileInfo) (int, bool) { return 0, false }
