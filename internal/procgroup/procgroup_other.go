//go:build !linux

// Package procgroup owns starting the servers that tests run in a process
// group of their own; elsewhere than Linux it signals the process alone.
package procgroup

import (
	"os"
	"os/exec"
)

// Own does nothing here.
func Own(*exec.Cmd) {}

// Signal interrupts (or kills) cmd.
func Signal(cmd *exec.Cmd, kill bool) {
	if kill {
		cmd.Process.Kill()
		return
	}
	cmd.Process.Signal(os.Interrupt)
}
