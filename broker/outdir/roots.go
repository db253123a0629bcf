package outdir

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Roots are the output directories of one config: output_root and the
// roots outputs name for themselves, each opened once as a Dir, so every
// write stays beneath the root its output names.
type Roots struct {
	dirs  map[string]*Dir
	order []string
}

// OpenRoots opens (creating where missing) every directory in roots.
func OpenRoots(roots []string, perms Perms) (*Roots, error) {
	r := &Roots{dirs: map[string]*Dir{}}
	for _, root := range roots {
		root = filepath.Clean(root)
		if _, ok := r.dirs[root]; ok {
			continue
		}
		d, err := Open(root, perms)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.dirs[root] = d
		r.order = append(r.order, root)
	}
	return r, nil
}

// Dir is the opened directory for root, or an error naming it when root
// was not opened (a bug in the caller: every output's root is opened).
func (r *Roots) Dir(root string) (*Dir, error) {
	if r != nil {
		if d, ok := r.dirs[filepath.Clean(root)]; ok {
			return d, nil
		}
	}
	return nil, fmt.Errorf("output root %s is not open", root)
}

// BeginBatch begins a batch in every root (see Dir.BeginBatch).
func (r *Roots) BeginBatch() {
	for _, root := range r.order {
		r.dirs[root].BeginBatch()
	}
}

// EndBatch ends the batch in every root.
func (r *Roots) EndBatch() {
	for _, root := range r.order {
		r.dirs[root].EndBatch()
	}
}

// Close closes every root.
func (r *Roots) Close() error {
	if r == nil {
		return nil
	}
	var errs []error
	for _, root := range r.order {
		errs = append(errs, r.dirs[root].Close())
	}
	return errors.Join(errs...)
}
