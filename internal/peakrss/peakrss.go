// Package peakrss owns measuring a child process's peak memory: it reads
// VmHWM (the high-water mark of its resident set) from /proc/PID/status
// every half millisecond while the process runs. The kernel's rusage maximum is not
// used: on Linux it also counts the parent's memory at the fork that
// started the child. Used by the memory tests and bench/peakrss.
package peakrss

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Run starts cmd, waits for it, and returns its peak resident set size in
// bytes and its exit error (as cmd.Wait returns it).
func Run(cmd *exec.Cmd) (int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	tick := time.NewTicker(500 * time.Microsecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return peak, err
		case <-tick.C:
			if hwm, err := VmHWM(cmd.Process.Pid); err == nil {
				peak = max(peak, hwm)
			}
		}
	}
}

// VmHWM reads a process's peak resident set size from /proc/PID/status.
func VmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
