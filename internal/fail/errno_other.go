//go:build !unix

package fail

func isFileSystemErrno(error) bool { return false }
