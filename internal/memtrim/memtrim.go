// Package memtrim owns giving the executable's pages back to the kernel
// while the daemon is idle.
//
// Most of an idle Go daemon's resident memory is not heap: it is the
// executable's code and read-only data, file-backed and clean, mapped in
// as they were touched at start (and, with the kernel's fault-around, the
// pages beside them). For secrets-broker that is about 14 MiB of a 18 MiB
// resident set. Advising the kernel to page them out (MADV_PAGEOUT, Linux
// 5.4+) and to read them back one page at a time (MADV_RANDOM) leaves only
// what the daemon touches again when it wakes. Nothing is lost: the pages
// are read again from the file when needed.
package memtrim

// Stats is the process's resident memory, in KiB.
type Stats struct {
	RSS, Anon, File int64
}
