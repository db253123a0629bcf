package broker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/format"
	"github.com/secrets-broker/secrets-broker/broker/outdir"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/fileowner"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"github.com/secrets-broker/secrets-broker/templates"
)

// Prepared is an output ready to render: its template parsed, its needs known.
type Prepared struct {
	Output config.Output
	// Root is the directory Spec.Path is beneath (config.RootOf).
	Root     string
	Spec     outdir.Spec
	Template *templates.Template
	Secrets  []string
}

// Name names the output in results, logs and metrics: its path, joined
// to its root when it has its own (two roots may hold the same path).
func (p Prepared) Name() string {
	if p.Output.Root == "" {
		return p.Output.Path
	}
	return filepath.Join(p.Root, p.Output.Path)
}

// Prepare parses every template and works out what each output needs,
// without contacting anything. validate runs only this.
func (b *Broker) Prepare() ([]Prepared, error) {
	declared := func(n string) bool { _, ok := b.Declared(n); return ok }
	hasToken := func(n string) bool { _, ok := b.cfg.Tokens[n]; return ok }
	var out []Prepared
	var errs []error
	for _, o := range b.cfg.Outputs {
		p := Prepared{Output: o, Root: b.cfg.RootOf(o)}
		mode, _ := o.FileMode()
		p.Spec = outdir.Spec{Path: o.Path, Mode: mode, UID: -1, GID: -1, AllowSymlink: o.AllowSymlink, AllowEmpty: o.AllowEmpty}
		if err := resolveOwner(&p.Spec, o); err != nil {
			errs = append(errs, fmt.Errorf("output %s: %w", o.Path, err))
			continue
		}
		switch o.Format {
		case config.FormatTemplate:
			name, text := "inline template of "+o.Path, o.TemplateText
			if o.Template != "" {
				name = o.Template
				data, err := readlimit.File(b.cfg.Resolve(o.Template), templates.MaxTemplateLen, "template "+o.Template)
				if err != nil {
					errs = append(errs, fmt.Errorf("output %s: %w", o.Path, err))
					continue
				}
				text = string(data)
			}
			t, err := templates.Parse(name, text, templates.Options{Declared: declared, Token: hasToken, FileSandbox: b.cfg.Resolve(b.cfg.FileSandbox),
				LeftDelim: o.LeftDelimiter, RightDelim: o.RightDelimiter, MissingKeyIsEmpty: o.ErrorOnMissingKey != nil && !*o.ErrorOnMissingKey})
			if err != nil {
				errs = append(errs, fmt.Errorf("output %s: %w", o.Path, err))
				continue
			}
			p.Template, p.Secrets = t, t.Secrets
			for _, tok := range t.Tokens {
				p.Secrets = append(p.Secrets, config.TokenName(tok))
			}
		case config.FormatRaw:
			p.Secrets = []string{o.Secret}
		default:
			p.Secrets = o.Secrets
			if len(p.Secrets) == 0 {
				for _, d := range b.cfg.Secrets {
					p.Secrets = append(p.Secrets, d.Name)
				}
			}
			if o.Format == config.FormatDotenv {
				for _, s := range p.Secrets {
					if !config.ValidEnvName(s) {
						errs = append(errs, fail.Mark(fail.Usage, fmt.Errorf("output %s: secret %q is not a valid dotenv variable name (letters, digits, _)", o.Path, s)))
					}
				}
			}
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, fail.Mark(fail.Usage, errors.Join(errs...))
	}
	return out, nil
}

func resolveOwner(spec *outdir.Spec, o config.Output) error {
	if (o.User != "" || o.Group != "") && !fileowner.Supported {
		return fail.Mark(fail.Usage, errors.New("user and group are not supported on this platform (Windows): remove them"))
	}
	if o.User != "" {
		id, err := fileowner.LookupUser(o.User)
		if err != nil {
			return fmt.Errorf("user %q: %w", o.User, err)
		}
		spec.UID = id
	}
	if o.Group != "" {
		id, err := fileowner.LookupGroup(o.Group)
		if err != nil {
			return fmt.Errorf("group %q: %w", o.Group, err)
		}
		spec.GID = id
	}
	return nil
}

// Needs lists the declared secrets and Vault calls of prepared outputs,
// each once.
func Needs(ps []Prepared) ([]string, []templates.VaultCall) {
	seenS := map[string]bool{}
	seenV := map[string]bool{}
	var names []string
	var calls []templates.VaultCall
	for _, p := range ps {
		for _, s := range p.Secrets {
			if !seenS[s] {
				seenS[s] = true
				names = append(names, s)
			}
		}
		if p.Template != nil {
			for _, c := range p.Template.Vault {
				if !seenV[c.Key()] {
					seenV[c.Key()] = true
					calls = append(calls, c)
				}
			}
		}
	}
	return names, calls
}

// Render produces one output's bytes from fetched secrets.
func Render(p Prepared, r *Resolved) ([]byte, error) {
	switch p.Output.Format {
	case config.FormatTemplate:
		return p.Template.Execute(templates.Data{Secrets: r.Values, Vault: r.Vault, Tokens: r.Tokens})
	case config.FormatRaw:
		return []byte(r.Values[p.Output.Secret]), nil
	default: // dotenv, json, yaml
		values := make([]envelope.Plain, len(p.Secrets))
		for i, s := range p.Secrets {
			values[i] = envelope.Plain{Name: s, Value: []byte(r.Values[s])}
		}
		return format.Marshal(values, p.Output.Format)
	}
}

// OutputResult is what happened to one output.
type OutputResult struct {
	Path    string
	Changed bool
	Err     error
	// Sum is the SHA-256 of the rendered content (when it rendered), so
	// the daemon can tell a restored file from a changed one.
	Sum [32]byte
}

// Report is the result of rendering every output.
type Report struct {
	Results []OutputResult
}

// Err names every output that failed, or is nil.
func (r Report) Err() error {
	var errs []error
	var failed []string
	for _, res := range r.Results {
		if res.Err != nil {
			failed = append(failed, res.Path)
			errs = append(errs, res.Err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%d output(s) failed (%s); their previous files are left as they were: %w", len(failed), strings.Join(failed, ", "), errors.Join(errs...))
}

// RenderOptions tune RenderOnce.
type RenderOptions struct {
	// DryRun reports which files would change and writes nothing.
	DryRun bool
	// Timeout bounds retrying an unreachable Vault or KMS (init containers
	// must not hang, vault #6001). Zero means one attempt.
	Timeout time.Duration
}

// RenderOnce fetches every secret the outputs need, renders them all in
// memory, and only then writes each one atomically. An output that fails
// leaves its previous file intact; the report names it.
func (b *Broker) RenderOnce(ctx context.Context, opts RenderOptions) (Report, error) {
	prepared, err := b.Prepare()
	if err != nil {
		return Report{}, err
	}
	if len(prepared) == 0 {
		return Report{}, fail.Mark(fail.Usage, fmt.Errorf("config %s has no outputs: nothing to render. Give a config (-c FILE) with outputs, or use exec to pass --secret values to a command", b.cfg.Source))
	}
	names, calls := Needs(prepared)
	res, fetchErr := b.FetchUntil(ctx, names, calls, nil, opts.Timeout, true)
	if res != nil {
		if _, err := b.ResolveDynamic(ctx, prepared, res); err != nil {
			fetchErr = errors.Join(fetchErr, err)
		}
	}
	perms, err := b.cfg.DirPerms()
	if err != nil {
		return Report{}, fail.Mark(fail.Usage, err)
	}
	roots, err := outdir.OpenRoots(b.cfg.Roots(), perms)
	if err != nil {
		return Report{}, err
	}
	defer roots.Close()
	rep := WriteAll(roots, prepared, res, opts.DryRun)
	if fetchErr != nil {
		return rep, fetchErr
	}
	return rep, rep.Err()
}

// writeConcurrency bounds the outputs written at once.
const writeConcurrency = 8

// WriteAll renders every prepared output from res and writes the ones
// that rendered (all of a bundle or none of it). Outputs that need a secret
// missing from res fail, naming it.
func WriteAll(roots *outdir.Roots, prepared []Prepared, res *Resolved, dryRun bool) Report {
	var rep Report
	bundles := map[string][]int{}
	var order []string
	for i, p := range prepared {
		if b := p.Output.Bundle; b != "" {
			if _, ok := bundles[b]; !ok {
				order = append(order, b)
			}
			bundles[b] = append(bundles[b], i)
		}
	}
	rendered := make([][]byte, len(prepared))
	errs := make([]error, len(prepared))
	for i, p := range prepared {
		if res == nil {
			errs[i] = fmt.Errorf("output %s: not rendered: its secrets could not be fetched", p.Name())
			continue
		}
		if missing := missingFor(p, res); missing != "" {
			errs[i] = fmt.Errorf("output %s: secret %s is unavailable", p.Name(), missing)
			continue
		}
		data, err := Render(p, res)
		if err != nil {
			errs[i] = fmt.Errorf("output %s: %w", p.Name(), err)
			continue
		}
		rendered[i] = data
	}
	// Files are written a few at a time: each write waits on two fsyncs,
	// which the file system can overlap.
	results := make([]OutputResult, len(prepared))
	batch := !dryRun && roots != nil // a daemon that only supervises a command has no output directory
	if batch {
		roots.BeginBatch()
	}
	var g errgroup.Group
	g.SetLimit(writeConcurrency)
	for i, p := range prepared {
		if p.Output.Bundle != "" {
			continue
		}
		g.Go(func() error {
			r := OutputResult{Path: p.Name(), Err: errs[i]}
			dir, err := roots.Dir(p.Root)
			if r.Err == nil && err != nil {
				r.Err = err
			}
			if r.Err == nil {
				r.Sum = sha256.Sum256(rendered[i])
				if dryRun {
					same, err := dir.Unchanged(p.Spec, rendered[i])
					r.Changed, r.Err = !same, err
				} else {
					r.Changed, r.Err = dir.Write(p.Spec, rendered[i])
				}
			}
			results[i] = r
			return nil
		})
	}
	_ = g.Wait()
	if batch {
		roots.EndBatch() // each directory written to is synced once
	}
	for i, p := range prepared {
		if p.Output.Bundle == "" {
			rep.Results = append(rep.Results, results[i])
		}
	}
	for _, name := range order {
		idx := bundles[name]
		var bundleErr error
		var specs []outdir.Spec
		var data [][]byte
		for _, i := range idx {
			if errs[i] != nil && bundleErr == nil {
				bundleErr = fmt.Errorf("bundle %s not switched: %w", name, errs[i])
			}
			specs = append(specs, prepared[i].Spec)
			data = append(data, rendered[i])
		}
		changed := false
		dir, err := roots.Dir(prepared[idx[0]].Root)
		if bundleErr == nil && err != nil {
			bundleErr = err
		}
		if bundleErr == nil {
			if dryRun {
				var same bool
				same, bundleErr = dir.BundleUnchanged(name, specs, data)
				changed = !same
			} else {
				changed, bundleErr = dir.WriteBundle(name, specs, data)
			}
		}
		for _, i := range idx {
			r := OutputResult{Path: prepared[i].Name(), Changed: changed, Err: bundleErr}
			if bundleErr == nil {
				r.Sum = sha256.Sum256(rendered[i])
			}
			rep.Results = append(rep.Results, r)
		}
	}
	for _, d := range rendered {
		clear(d)
	}
	return rep
}

func missingFor(p Prepared, r *Resolved) string {
	for _, s := range p.Secrets {
		if _, ok := r.Values[s]; !ok {
			return s
		}
	}
	if p.Template != nil {
		for _, c := range p.Template.Vault {
			if _, ok := r.Vault[c.Key()]; !ok {
				return "vault:" + c.Key()
			}
		}
	}
	return ""
}

// maxDiscoveryPasses bounds how many times templates with computed Vault
// paths are rendered to find what they read (a path built from a secret
// that is built from a secret ... needs one pass per level).
const maxDiscoveryPasses = 8
