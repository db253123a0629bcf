//go:build linux

package supervisor

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// A child some library started (not through Reaper.Start) and waits for
// itself is left to it: the reaper does not take a zombie before its grace
// ends, so the library's Wait succeeds instead of failing with ECHILD (the
// AWS SDK's credential_process under a PID 1 broker). A zombie nobody
// waits for (an orphan) is reaped once its grace has passed. Fails on
// c5e921c, whose reaper took every unknown zombie at once.
func TestReaperLeavesALibrarysChildToIt(t *testing.T) {
	r := &Reaper{}
	lib := exec.Command("/bin/true")
	if err := lib.Start(); err != nil {
		t.Fatal(err)
	}
	waitZombie(t, lib.Process.Pid)
	now := time.Now()
	if next := r.reap(now); next > reapGrace+time.Second {
		t.Errorf("with a zombie pending, the next scan is in %s; want it by the end of its grace", next)
	}
	if err := lib.Wait(); err != nil {
		t.Fatalf("the library's own Wait failed after a scan: %v", err)
	}

	orphan := exec.Command("/bin/true")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	pid := orphan.Process.Pid
	waitZombie(t, pid)
	r.reap(now)
	if state(pid) != "Z" {
		t.Fatal("a zombie was reaped on its first sighting")
	}
	r.reap(now.Add(reapGrace))
	if s := state(pid); s != "" {
		t.Fatalf("a zombie nobody waited for is still there (%q) after its grace", s)
	}
	orphan.Process.Release()
}

func waitZombie(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for state(pid) != "Z" {
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not exit", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// state is the process's state letter from /proc, "" when it is gone.
func state(pid int) string {
	for _, z := range zombieChildren(os.Getpid()) {
		if z.pid == pid {
			return "Z"
		}
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		return ""
	}
	return "R"
}
