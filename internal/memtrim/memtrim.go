// Package memtrim owns giving the executable's pages back to the kernel
// while the daemon is idle.
//
// Most of an idle Go daemon's resident memory is not heap: it is the
// executable's code and read-only data, file-backed and clean, mapped in
// as they were touched at start (and, with the kernel's fault-around, the
// pages beside them). For secrets-broker that is about 14 MiB of a 18 MiB
// resident set. Dropping those pages from the process's page tables
// (MADV_DONTNEED) leaves only what the daemon touches again when it wakes.
// Nothing is lost: the pages stay in the kernel's page cache, shared with
// every other process running the same file, and are mapped back when
// needed. This works for any user; asking the kernel to evict them
// instead (MADV_PAGEOUT) does nothing for a file the process neither owns
// nor may write, which is how a container image runs its binary.
package memtrim

// Stats is the process's resident memory, in KiB.
type Stats struct {
	RSS, Anon, File int64
}
