//go:build linux

// Package procgroup owns starting the servers that tests run (Vault, etcd,
// kube-apiserver) in a process group of their own, ended with the test
// process if it dies first, and signalling the whole group.
package procgroup

import (
	"os/exec"
	"syscall"
)

// Own makes cmd start in its own process group, sent SIGTERM if the test
// process dies.
func Own(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

// Signal sends SIGTERM (or SIGKILL) to cmd's group.
func Signal(cmd *exec.Cmd, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	syscall.Kill(-cmd.Process.Pid, sig)
}
