// Package nodump owns hiding the broker process from processes of the same
// user: on Linux it marks the process not dumpable, so that a child it
// starts (exec, run --exec, a notify command), or anything else running as
// the same uid without CAP_SYS_PTRACE, can neither read its environment
// (/proc/PID/environ, which holds VAULT_TOKEN and AWS credentials the child
// was not given) nor its memory (/proc/PID/mem, ptrace), nor get a core
// dump of it.
package nodump

// Apply marks the calling process not dumpable. It must run before the
// process reads any secret; main calls it first. A child started later is
// dumpable again after its execve (the kernel resets the flag for a
// program that gains no privileges), so it does not inherit the mark.
func Apply() error { return apply() }
