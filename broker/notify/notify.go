// Package notify tells an app that its secrets changed: it signals the
// process a pid file names, only when that process belongs to the file's
// owner, and runs notify commands without the broker's credentials.
package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/supervisor"
	"github.com/secrets-broker/secrets-broker/internal/credenv"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

// maxPIDFileLen bounds a pid file: a number and a newline.
const maxPIDFileLen = 64

// SignalPIDFile sends sig to the process whose id the pid file holds, only
// when that process belongs to the file's owner: whoever can write the pid
// file (the app) can then make the broker signal no process it could not
// signal itself, even when the broker runs as root. The file is opened
// without following a symbolic link, and refused with more than one link,
// so that the app cannot lend itself another user's pid file; where the
// process's owner cannot be read (no /proc), only a pid file the broker's
// own user wrote is used.
func SignalPIDFile(path string, sig syscall.Signal) error {
	f, info, err := openPIDFile(path)
	if err != nil {
		return err
	}
	data, err := readlimit.Opened(f, maxPIDFileLen, "pid_file "+path)
	f.Close()
	if err != nil {
		return fmt.Errorf("cannot read pid_file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("pid_file %s does not hold a process id", path)
	}
	if fileUID, _, ok := fileowner.Of(info); ok {
		procUID, known := processUID(pid)
		switch {
		case !known && fileUID != os.Geteuid():
			return fmt.Errorf("pid_file %s (owned by uid %d) names process %d, whose owner cannot be read here (no /proc, or it is a thread of another process): not signalled; then the broker signals only through a pid file its own user wrote", path, fileUID, pid)
		case known && procUID != fileUID:
			return fmt.Errorf("pid_file %s (owned by uid %d) names process %d of uid %d: not signalled; the broker signals only a process of the pid file's owner, so that whoever writes the file cannot direct its signals elsewhere", path, fileUID, pid, procUID)
		}
	}
	if err := signalProcess(pid, sig); err != nil {
		return fmt.Errorf("cannot signal process %d: %w", pid, err)
	}
	return nil
}

// Run signals the process in the pid file and/or runs the command
// (no shell; the broker's own credentials are not passed on).
func Run(ctx context.Context, n *config.Notify, reaper *supervisor.Reaper) error {
	var errs []error
	if n.Signal != "" {
		sig, _ := config.ParseSignal(n.Signal) // checked when the config loaded
		if err := SignalPIDFile(n.PIDFile, sig); err != nil {
			errs = append(errs, err)
		}
	}
	if len(n.Command) > 0 {
		timeout := n.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(cctx, n.Command[0], n.Command[1:]...)
		cmd.Env = credenv.Strip(os.Environ())
		err := reaper.Start(cmd)
		if err == nil {
			err = cmd.Wait()
			reaper.Done(cmd.Process.Pid)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("notify command %s: %w", n.Command[0], err))
		}
	}
	return errors.Join(errs...)
}
