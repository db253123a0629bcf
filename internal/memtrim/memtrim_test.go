//go:build linux

package memtrim

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"golang.org/x/sys/unix"
)

// TestMain runs the child of the page-out tests when asked to.
func TestMain(m *testing.M) {
	if os.Getenv("MEMTRIM_CHILD") == "1" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

// child maps all of its executable in, says "mapped", waits for a line,
// trims, says "trimmed" and waits for its input to end. Its parent
// measures it in between, so that no measuring code runs in it.
func child() int {
	// No collection between the parent's two measurements: a cycle reads
	// the type data of what it marks and would map read-only data back.
	runtime.GC()
	debug.SetGCPercent(-1)
	smaps, exe, err := readSmaps()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	for _, m := range trimmable(smaps, exe) {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_POPULATE_READ); errno != 0 {
			fmt.Println("mapping the executable in (MADV_POPULATE_READ, Linux 5.14+):", errno)
			return 1
		}
	}
	in := bufio.NewReader(os.Stdin)
	fmt.Println("mapped")
	in.ReadString('\n')
	if err := Executable(); err != nil {
		fmt.Println("trim:", err)
		return 1
	}
	// From here on, as little code as can be: a raw write, then raw reads
	// until the parent closes the pipe.
	unix.Write(1, []byte("trimmed\n"))
	for buf := make([]byte, 1); ; {
		if n, err := unix.Read(0, buf); n <= 0 && err != unix.EINTR {
			return 0
		}
	}
}

// trimChild runs this test binary at bin as a child (as uid when not
// nil), and returns the resident KiB of the child's executable's read-only
// data (not its code: the child maps back the code it runs after the
// trim, 64 KiB around each page with the kernel's fault-around, which in
// a test binary this small is a good part of it) before and after it
// trims.
func trimChild(t *testing.T, bin string, cred *syscall.Credential) (before, after int64) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = filepath.Dir(bin)
	cmd.Env = []string{"MEMTRIM_CHILD=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	out := bufio.NewReader(stdout)
	expect := func(want string) {
		t.Helper()
		line, err := out.ReadString('\n')
		if line != want+"\n" {
			t.Fatalf("child said %q (%v), want %q", line, err, want)
		}
	}
	resident := func() int64 {
		t.Helper()
		proc := "/proc/" + strconv.Itoa(cmd.Process.Pid)
		exe, err := os.Readlink(proc + "/exe")
		if err != nil {
			t.Fatal(err)
		}
		smaps, err := readlimit.File(proc+"/smaps", maxSmaps, "the child's memory map")
		if err != nil {
			t.Fatal(err)
		}
		var kib int64
		for _, m := range mappingsOf(smaps, exe) {
			if m.perms == "r--p" {
				kib += m.rssKiB - m.anonKiB
			}
		}
		return kib
	}
	expect("mapped")
	before = resident()
	io.WriteString(stdin, "trim\n")
	expect("trimmed")
	return before, resident()
}

// Dropping the executable's pages leaves few of them resident: a child
// maps all of its executable (this test binary) in, trims, and keeps only
// what it used since.
func TestExecutablePagesOut(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	before, after := trimChild(t, self, nil)
	t.Logf("the executable's resident read-only data: %d KiB -> %d KiB", before, after)
	if before == 0 || after > before/2 {
		t.Fatalf("the executable's resident read-only data went from %d KiB to %d KiB; want at most half left", before, after)
	}
}

// The image runs its root-owned binary as user 65532. The kernel will not
// page out (MADV_PAGEOUT) a file the process neither owns nor may write,
// so the trim must work another way: run the child as such a user, from a
// root-owned copy of this test binary.
func TestExecutablePagesOutForAUserWhoDoesNotOwnTheFile(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child as another user (CI runs as root)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir's folders are private to root; this one must not be.
	dir, err := os.MkdirTemp("", "memtrim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "memtrim.test")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	before, after := trimChild(t, bin, &syscall.Credential{Uid: 65532, Gid: 65532})
	t.Logf("uid 65532: the executable's resident read-only data: %d KiB -> %d KiB", before, after)
	if before == 0 || after > before/2 {
		t.Fatalf("uid 65532, root-owned executable: its resident read-only data went from %d KiB to %d KiB; want at most half left", before, after)
	}
}

// Only the executable's read-only mappings with no changed page are
// dropped: a writable one, another file's, or a read-only one holding
// changed pages (the relocated data of a position-independent executable)
// is left alone.
func TestTrimmableSkipsWritableAndChangedMappings(t *testing.T) {
	smaps := `00400000-00d5a000 r-xp 00000000 fd:01 123 /opt/my broker/secrets-broker
Size:               9576 kB
Rss:                6000 kB
Anonymous:             0 kB
00d5b000-0174b000 r--p 0095b000 fd:01 123 /opt/my broker/secrets-broker
Anonymous:             0 kB
0174b000-0174c000 r--p 0134b000 fd:01 123 /opt/my broker/secrets-broker
Anonymous:             4 kB
0174c000-017e2000 rw-p 0134c000 fd:01 123 /opt/my broker/secrets-broker
Anonymous:           200 kB
7f0000000000-7f0000001000 r--p 00000000 fd:01 456 /usr/lib/other.so
Anonymous:             0 kB
7f0000002000-7f0000004000 rw-p 00000000 00:00 0
Anonymous:             8 kB
`
	got := trimmable([]byte(smaps), "/opt/my broker/secrets-broker")
	want := []span{{0x400000, 0xd5a000}, {0xd5b000, 0x174b000}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("trimmable = %x, want %x", got, want)
	}
	if got := trimmable([]byte(smaps), "/opt/my"); got != nil {
		t.Fatalf("a path that is a prefix of the mapping's matched: %x", got)
	}
	if m := mappingsOf([]byte(smaps), "/opt/my broker/secrets-broker"); len(m) != 4 || m[0].rssKiB != 6000 || m[3].anonKiB != 200 {
		t.Fatalf("mappingsOf = %+v", m)
	}
}
