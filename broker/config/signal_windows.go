//go:build windows

package config

import "syscall"

// notifySignals: none, signals are not supported on Windows.
var notifySignals = map[string]syscall.Signal{}

const notifySignalNames = "(none: signals are not supported on Windows; use notify command)"
