package daemon

import "syscall"

// WithoutInotify makes opts' daemon find the kernel out of inotify
// instances, as a node running more than fs.inotify.max_user_instances
// daemons of one user does.
func WithoutInotify(opts Options) Options {
	opts.newWatcher = func() (dirWatcher, error) { return nil, syscall.EMFILE }
	return opts
}
