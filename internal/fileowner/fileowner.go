// Package fileowner owns a file's POSIX owner and group, where the
// platform has them: reading them (the one place the output writer, the
// restart cache, the local key check and notify's pid-file check ask whose
// a file is) and looking user and group names up as ids.
package fileowner
