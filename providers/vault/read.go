package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/sync/errgroup"

	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/redact"
)

// Ref names a secret in Vault: a path, optional request parameters, an
// optional KV v2 version and an optional field. Its text form is
//
//	PATH[?PARAM=VALUE&...][#FIELD]
//
// for example secret/data/app#password, secret/data/app?version=3#password,
// database/creds/app, pki/issue/web?common_name=a.example.com. A path with
// parameters other than version is written (POST) with them, as
// consul-template does; otherwise it is read.
type Ref struct {
	Path    string
	Params  map[string]string
	Version int
	Field   string
	// List makes the request a LIST of the keys under Path (templates'
	// secrets function); the response's data holds "keys".
	List bool
	// Write makes the request a write with no parameters (PATH?): a
	// template's pkiCert with none, which always writes to issue.
	Write bool
	// Computed marks a path a template computed while rendering (printf,
	// a variable, a range element): it may be built from a secret's value,
	// so errors never show it, in any form; they say "a computed path".
	// It is not part of the request: RequestKey and String ignore it.
	Computed bool
}

// computedShown is what errors say of a Computed reference.
const computedShown = "a computed path"

// hide keeps a computed reference's path out of err: its Error names "a
// computed path", and every form of the path and of each of its tails
// (Vault may quote the path, a URL or the part below the mount), and of
// each parameter's value, is replaced in what Vault or the HTTP client
// said. Classification and
// errors.Is/As are unchanged. Other references' errors are returned as
// they are.
func (r Ref) hide(err error) error {
	if !r.Computed || err == nil {
		return err
	}
	segs := strings.Split(r.Path, "/")
	tails := []string{r.RequestKey()}
	for i := range segs {
		tails = append(tails, strings.Join(segs[i:], "/"))
	}
	// A parameter may be computed too (a common_name built from a secret),
	// and Vault quotes some back ("common name X not allowed").
	for _, v := range r.Params {
		tails = append(tails, v)
		// Vault quotes one element of a list back (alt_names, ip_sans:
		// "subject alternate name X not allowed").
		for _, el := range strings.Split(v, ",") {
			tails = append(tails, el, strings.TrimSpace(el))
		}
		// and one part of an element: other_sans is OID;UTF8:VALUE, and
		// Vault quotes VALUE alone.
		tails = append(tails, strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(",;: ", r) })...)
	}
	scrub := func(msg string) string { return redact.String(msg, tails) }
	var ve *Error
	if !errors.As(err, &ve) {
		return hiddenError{msg: scrub(err.Error()), err: err}
	}
	cp := *ve
	cp.Path, cp.Ref, cp.Message = computedShown, "", scrub(ve.Message)
	if ve.Err != nil {
		cp.Err = hiddenError{msg: scrub(ve.Err.Error()), err: ve.Err}
	}
	return &cp
}

// hiddenError is an error whose text had a computed path taken out; it
// unwraps to the original for errors.Is and errors.As.
type hiddenError struct {
	msg string
	err error
}

func (h hiddenError) Error() string { return h.msg }
func (h hiddenError) Unwrap() error { return h.err }

// RefHelp shows the form of a reference.
const RefHelp = "PATH[?PARAM=VALUE&...][#FIELD], e.g. secret/data/app#password or database/creds/app"

// ParseRef reads the text form of a reference.
func ParseRef(s string) (Ref, error) {
	bad := func(why string) (Ref, error) {
		return Ref{}, fail.Mark(fail.Usage, fmt.Errorf("vault reference %q %s; expected %s", s, why, RefHelp))
	}
	rest, field, _ := strings.Cut(s, "#")
	path, query, hasQuery := strings.Cut(rest, "?")
	path = strings.Trim(path, "/")
	if path == "" {
		return bad("has no path")
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, " \t\n") {
			return bad("has an empty, dot or blank path segment")
		}
	}
	r := Ref{Path: path, Field: field}
	if hasQuery && query == "" {
		r.Write = true // PATH? is a write with an empty body
	}
	if hasQuery {
		vals, err := url.ParseQuery(query)
		if err != nil {
			return bad("has bad parameters")
		}
		for k, v := range vals {
			if len(v) != 1 {
				return bad("repeats parameter " + k)
			}
			if k == "version" {
				n, err := strconv.Atoi(v[0])
				if err != nil || n < 1 {
					return bad("has a version that is not a positive number")
				}
				r.Version = n
				continue
			}
			if r.Params == nil {
				r.Params = map[string]string{}
			}
			r.Params[k] = v[0]
		}
	}
	if strings.Contains(field, "#") {
		return bad("has two #")
	}
	return r, nil
}

// String is the text form.
func (r Ref) String() string { return r.RequestKey() + fieldSuffix(r.Field) }

func fieldSuffix(f string) string {
	if f == "" {
		return ""
	}
	return "#" + f
}

// RequestKey identifies the request a reference needs: references that
// differ only in their field share one request.
func (r Ref) RequestKey() string {
	if r.List {
		return "LIST " + r.Path
	}
	q := url.Values{}
	for k, v := range r.Params {
		q.Set(k, v)
	}
	if r.Version > 0 {
		q.Set("version", strconv.Itoa(r.Version))
	}
	if len(q) == 0 {
		if r.Write {
			return r.Path + "?"
		}
		return r.Path
	}
	return r.Path + "?" + q.Encode()
}

// Lease is what Vault said about a secret's lifetime.
type Lease struct {
	ID        string
	TTL       time.Duration
	Renewable bool
	// IssuedAt is when the response arrived, on the monotonic clock.
	IssuedAt time.Time
}

// ExpiresAt is IssuedAt plus TTL; zero when there is no TTL.
func (l Lease) ExpiresAt() time.Time {
	if l.TTL <= 0 {
		return time.Time{}
	}
	return l.IssuedAt.Add(l.TTL)
}

// Secret is one response from Vault.
type Secret struct {
	Ref  Ref
	Path string
	// Data holds the secret's fields: for KV v2, the inner data.data.
	Data map[string]any
	// Metadata is KV v2 metadata (version, created_time, ...); nil otherwise.
	Metadata map[string]any
	// Raw is Vault's whole response, as templates written for Vault Agent
	// and consul-template see it (.Data.data.password for KV v2).
	Raw   *api.Secret
	Lease Lease
	// KVv2 says the response came from a KV version 2 mount.
	KVv2 bool
}

// Field returns one field as a string (numbers and booleans in their JSON
// form, objects as JSON). A missing field is a NotFound error that lists the
// field names present, never their values.
func (s *Secret) Field(name string) (string, error) {
	v, ok := s.Data[name]
	if !ok {
		names := make([]string, 0, len(s.Data))
		for k := range s.Data {
			names = append(names, k)
		}
		sort.Strings(names)
		hint := ""
		if !s.KVv2 && len(names) == 2 && s.Data["data"] != nil && s.Data["metadata"] != nil {
			hint = " (this looks like KV v2 read through a v1 path: use PATH with /data/)"
		}
		return "", &Error{Op: "read", Path: s.Path, Ref: s.Ref.String(), Kind: fail.NotFound,
			Message: fmt.Sprintf("no field %q; fields present: %s%s", name, strings.Join(names, ", "), hint)}
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "", nil
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
}

// Value returns the referenced field, or the whole data as JSON when the
// reference names none.
func (s *Secret) Value() (string, error) {
	if s.Ref.Field != "" {
		return s.Field(s.Ref.Field)
	}
	b, err := json.Marshal(s.Data)
	return string(b), err
}

// Read fetches one reference. A denied request is retried once after
// logging in again (the token may have expired), when the method can.
func (c *Client) Read(ctx context.Context, ref Ref) (*Secret, error) {
	s, err := c.read(ctx, ref)
	var ve *Error
	if errors.As(err, &ve) && ve.Kind == fail.Denied && ctx.Err() == nil && c.relogin(ctx) {
		s, err = c.read(ctx, ref)
	}
	return s, err
}

func (c *Client) read(ctx context.Context, ref Ref) (*Secret, error) {
	s, err := c.readRef(ctx, ref)
	return s, ref.hide(err)
}

func (c *Client) readRef(ctx context.Context, ref Ref) (*Secret, error) {
	var raw *api.Secret
	var err error
	op := "read"
	switch {
	case ref.List:
		op = "list"
		raw, err = c.api.Logical().ListWithContext(ctx, ref.Path)
		if err == nil && raw == nil {
			raw = &api.Secret{Data: map[string]any{"keys": []any{}}} // nothing under the path: an empty list
		}
	case len(ref.Params) > 0 || ref.Write:
		op = "write"
		body := make(map[string]any, len(ref.Params))
		for k, v := range ref.Params {
			body[k] = v
		}
		raw, err = c.api.Logical().WriteWithContext(ctx, ref.Path, body)
	case ref.Version > 0:
		raw, err = c.api.Logical().ReadWithDataWithContext(ctx, ref.Path, map[string][]string{"version": {strconv.Itoa(ref.Version)}})
	default:
		raw, err = c.api.Logical().ReadWithContext(ctx, ref.Path)
	}
	issued := time.Now()
	if err != nil {
		e := classify(op, ref.Path, ref.String(), err)
		if e.Kind == fail.NotFound && strings.Contains(e.Message, "Invalid path for a versioned K/V") {
			e.Message += " (a KV v2 path needs /data/, e.g. " + kvV2Hint(ref.Path) + ")"
		}
		return nil, e
	}
	if raw == nil {
		if op == "write" {
			// Vault did the write and answered 204 with no body (a KV v1
			// write): the result is empty, as consul-template renders it.
			raw = &api.Secret{}
		} else {
			return nil, &Error{Op: op, Path: ref.Path, Ref: ref.String(), Status: 404, Kind: fail.NotFound, Message: "no secret at this path"}
		}
	}
	if raw.Data == nil && len(raw.Warnings) > 0 {
		msg := strings.Join(raw.Warnings, "; ")
		if strings.Contains(msg, "versioned K/V") {
			msg += " (a KV v2 path needs /data/, e.g. " + kvV2Hint(ref.Path) + ")"
		}
		return nil, &Error{Op: op, Path: ref.Path, Ref: ref.String(), Status: 404, Kind: fail.NotFound, Message: msg}
	}
	return fromResponse(op, ref, raw, issued)
}

// FromResponse rebuilds the Secret that reading ref returned as raw at
// issued: how the restart cache restores a response it kept.
func FromResponse(ref Ref, raw *api.Secret, issued time.Time) (*Secret, error) {
	op := "read"
	if len(ref.Params) > 0 {
		op = "write"
	}
	return fromResponse(op, ref, raw, issued)
}

func fromResponse(op string, ref Ref, raw *api.Secret, issued time.Time) (*Secret, error) {
	s := &Secret{Ref: ref, Path: ref.Path, Raw: raw, Data: raw.Data, Lease: Lease{ID: raw.LeaseID, TTL: time.Duration(raw.LeaseDuration) * time.Second, Renewable: raw.Renewable, IssuedAt: issued}}
	if inner, ok := raw.Data["data"].(map[string]any); ok {
		if meta, ok := raw.Data["metadata"].(map[string]any); ok && strings.Contains(ref.Path, "/data/") {
			s.KVv2, s.Data, s.Metadata = true, inner, meta
		}
	} else if raw.Data["data"] == nil && raw.Data["metadata"] != nil && strings.Contains(ref.Path, "/data/") {
		// KV v2 version deleted or destroyed: data is null.
		return nil, &Error{Op: op, Path: ref.Path, Ref: ref.String(), Kind: fail.NotFound, Message: "this KV v2 version is deleted or destroyed"}
	}
	return s, nil
}

func kvV2Hint(path string) string {
	mount, rest, ok := strings.Cut(path, "/")
	if !ok {
		return mount + "/data/NAME"
	}
	return mount + "/data/" + rest
}

// ReadMany fetches every reference with one request per distinct path and
// parameters (references that differ only in field share it), at most
// concurrency at a time. Results are in the order of refs; errors name each
// failed reference.
func (c *Client) ReadMany(ctx context.Context, refs []Ref, concurrency int) ([]*Secret, error) {
	type call struct {
		secret *Secret
		err    error
	}
	calls := make(map[string]*call, len(refs))
	keys := make([]string, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for i, r := range refs {
		keys[i] = r.RequestKey()
		if _, ok := calls[keys[i]]; ok {
			continue
		}
		cl := &call{}
		calls[keys[i]] = cl
		req := r
		req.Field = "" // the request, not the field read from its answer
		g.Go(func() error {
			cl.secret, cl.err = c.Read(gctx, req)
			return nil
		})
	}
	g.Wait()
	out := make([]*Secret, len(refs))
	var errs []error
	for i, r := range refs {
		cl := calls[keys[i]]
		if cl.err != nil {
			var ve *Error
			if errors.As(cl.err, &ve) {
				cp := *ve
				if !r.Computed {
					cp.Ref = r.String()
				}
				errs = append(errs, &cp)
			} else {
				errs = append(errs, cl.err)
			}
			continue
		}
		s := *cl.secret
		s.Ref = r
		out[i] = &s
	}
	if len(errs) > 0 {
		return out, errors.Join(errs...)
	}
	return out, nil
}
