package memtrim

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Executable advises the kernel to page out the executable's file-backed
// mappings and to read them back without read-ahead. It returns the first
// error (EINVAL on kernels before 5.4); the process is unaffected either way.
func Executable() error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	var first error
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// address perms offset dev inode path; writable mappings hold data
		// the process changed and are left alone.
		if len(f) < 6 || f[5] != exe || strings.Contains(f[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		// The mapping is addressed by number: it is not Go memory.
		for _, advice := range []uintptr{unix.MADV_PAGEOUT, unix.MADV_RANDOM} {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), advice); errno != 0 && first == nil {
				first = errno
			}
		}
	}
	return first
}

// Resident reads the process's resident memory from /proc/self/status.
func Resident() (Stats, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return Stats{}, err
	}
	var s Stats
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			s.RSS = n
		case "RssAnon":
			s.Anon = n
		case "RssFile":
			s.File = n
		}
	}
	return s, nil
}
