//go:build !linux

package memtrim

import "errors"

// Executable does nothing outside Linux.
func Executable() error { return errors.ErrUnsupported }

// Resident is not available outside Linux.
func Resident() (Stats, error) { return Stats{}, errors.ErrUnsupported }
