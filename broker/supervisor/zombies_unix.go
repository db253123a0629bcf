//go:build unix

package supervisor

import (
	"bytes"
	"os"
	"strconv"
)

// zombieChildren lists the processes whose parent is ppid and that have
// exited but not been waited for, from /proc.
func zombieChildren(ppid int) []zombie {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []zombie
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
		// fields[0] is field 3 (state); the start time is field 22.
		if p, err := strconv.Atoi(string(fields[1])); err == nil && p == ppid && len(fields) > 19 {
			out = append(out, zombie{pid: pid, start: string(fields[19])})
		}
	}
	return out
}
