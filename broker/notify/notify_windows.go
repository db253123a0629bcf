//go:build windows

package notify

import (
	"errors"
	"os"
	"syscall"
)

func signalProcess(int, syscall.Signal) error {
	return errors.New("signalling a process is not supported on Windows; use notify command")
}

// processUID: Windows has no POSIX uids; nothing is signalled there anyway.
func processUID(int) (int, bool) { return 0, false }

// openPIDFile opens a pid file (nothing is signalled on Windows anyway).
func openPIDFile(path string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}
