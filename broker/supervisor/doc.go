// Package supervisor owns the application process that secrets-broker runs
// with secrets in its environment (run --exec, and exec): starting it,
// forwarding signals to it, stopping it (a stop signal, then SIGKILL after a
// timeout), restarting it or signalling it once per change of its secrets,
// restarting it or ending with its status when it exits on its own, and, when
// the broker is PID 1, reaping the orphans that are re-parented to it.
package supervisor
