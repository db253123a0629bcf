package memtrim

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// maxSmaps bounds what is read of /proc/self/smaps: a Go process has a few
// dozen mappings, some 1.5 KiB each.
const maxSmaps = 4 << 20

// Executable drops the pages of the executable's read-only, unchanged
// mappings from the process (MADV_DONTNEED) and asks for them back without
// read-ahead (MADV_RANDOM). It returns the first error; the process is
// unaffected either way.
func Executable() error {
	smaps, exe, err := readSmaps()
	if err != nil {
		return err
	}
	var first error
	for _, m := range trimmable(smaps, exe) {
		// The mapping is addressed by number: it is not Go memory.
		for _, advice := range []uintptr{unix.MADV_DONTNEED, unix.MADV_RANDOM} {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), advice); errno != 0 && first == nil {
				first = errno
			}
		}
	}
	return first
}

// readSmaps reads /proc/self/smaps and the executable's path.
func readSmaps() (smaps []byte, exe string, err error) {
	exe, err = os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, "", err
	}
	smaps, err = readlimit.File("/proc/self/smaps", maxSmaps, "the process's memory map")
	return smaps, exe, err
}

// span is one mapping's address range.
type span struct{ start, end uint64 }

// trimmable returns the mappings of the file exe, in the /proc/PID/smaps
// text, whose pages can be dropped and read again from the file: not
// writable, and holding no page the process changed ("Anonymous: 0 kB").
// A read-only mapping can hold changed pages (the relocated data of a
// position-independent executable, made read-only after relocation);
// dropping those would bring back the file's unrelocated bytes.
func trimmable(smaps []byte, exe string) []span {
	var out []span
	for _, m := range mappingsOf(smaps, exe) {
		if !strings.Contains(m.perms, "w") && m.anonKiB == 0 {
			out = append(out, m.span)
		}
	}
	return out
}

// mapping is one mapping of a file, from /proc/PID/smaps.
type mapping struct {
	span
	perms           string
	rssKiB, anonKiB int64
}

// mappingsOf returns the mappings of the file path in the smaps text.
func mappingsOf(smaps []byte, path string) []mapping {
	var out []mapping
	var cur *mapping
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if strings.HasSuffix(fields[0], ":") { // "Key: value kB"
			if cur != nil && len(fields) > 1 {
				n, _ := strconv.ParseInt(fields[1], 10, 64)
				switch fields[0] {
				case "Rss:":
					cur.rssKiB = n
				case "Anonymous:":
					cur.anonKiB = n
				}
			}
			continue
		}
		// A new mapping: "start-end perms offset dev inode path".
		cur = nil
		if len(fields) < 6 || pathOf(line, fields) != path {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if ok && err1 == nil && err2 == nil && end > start {
			out = append(out, mapping{span: span{start, end}, perms: fields[1]})
			cur = &out[len(out)-1]
		}
	}
	return out
}

// pathOf returns the path of a mapping line: everything after the inode,
// which may hold spaces (and " (deleted)" when the file was replaced).
func pathOf(line string, fields []string) string {
	rest := line
	for _, f := range fields[:5] {
		i := strings.Index(rest, f)
		rest = rest[i+len(f):]
	}
	return strings.TrimSpace(rest)
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
