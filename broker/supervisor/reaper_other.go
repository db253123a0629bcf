//go:build !unix

package supervisor

import "context"

// Run does nothing where there are no orphans to reap.
func (r *Reaper) Run(ctx context.Context) { <-ctx.Done() }
