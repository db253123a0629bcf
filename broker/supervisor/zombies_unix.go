//go:build unix

package supervisor

import (
	"bytes"
	"os"
	"strconv"
)

// zombieChildren lists the processes whose parent is ppid and that have
// exited but not been waited for, from /proc.
func zombieChildren(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses,
		// so read from the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := bytes.Fields(stat[i+1:])
		if len(fields) < 2 || string(fields[0]) != "Z" {
			continue
		}
		if p, err := strconv.Atoi(string(fields[1])); err == nil && p == ppid {
			out = append(out, pid)
		}
	}
	return out
}
