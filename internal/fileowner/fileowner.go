// Package fileowner owns reading a file's POSIX owner and group, where the
// platform has them: the one place the output writer, the restart cache,
// the local key check and notify's pid-file check ask whose a file is.
package fileowner
