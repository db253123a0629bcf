//go:build linux

package memtrim

import "testing"

// Paging the executable out leaves far fewer of its pages resident (the
// test binary's, here); the process goes on running its code.
func TestExecutablePagesOut(t *testing.T) {
	before, err := Resident()
	if err != nil || before.File == 0 {
		t.Fatalf("resident memory: %+v, %v", before, err)
	}
	if err := Executable(); err != nil {
		t.Fatalf("madvise: %v (MADV_PAGEOUT needs Linux 5.4 or later)", err)
	}
	after, err := Resident()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file-backed resident memory %d KiB -> %d KiB (anon %d -> %d)", before.File, after.File, before.Anon, after.Anon)
	if after.File > before.File/2 {
		t.Fatalf("file-backed resident memory went from %d KiB to %d KiB; want it at least halved", before.File, after.File)
	}
}
