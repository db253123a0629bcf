//go:build unix

package notify

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func signalProcess(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// processUID is the real uid of process pid, from /proc (Linux); known is
// false where there is no /proc, the process is gone, or pid is a thread
// of another process (a thread may run with credentials of its own, and a
// signal to it reaches its whole process).
func processUID(pid int) (uid int, known bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	tgid, uid := -1, -1
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, _ := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		switch name {
		case "Tgid":
			tgid, _ = strconv.Atoi(f[0])
		case "Uid":
			uid, _ = strconv.Atoi(f[0])
		}
	}
	if tgid != pid || uid < 0 {
		return 0, false
	}
	return uid, true
}

// openPIDFile opens a notify pid file, with its information, without
// following a symbolic link (nor blocking on a FIFO) and refuses one with
// more than one hard link:
// either would let whoever writes the pid file's directory present another
// user's pid file as its own.
func openPIDFile(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, nil, fmt.Errorf("pid_file %s is a symbolic link: not followed (it could name another user's pid file); write the pid file itself there", path)
		}
		return nil, nil, fmt.Errorf("cannot read pid_file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("cannot read pid_file: %w", err)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		f.Close()
		return nil, nil, fmt.Errorf("pid_file %s has %d hard links: not used (a link could lend it another user's pid file); write the pid file itself there", path, st.Nlink)
	}
	return f, info, nil
}
