// Package inject owns the Kubernetes injector's decisions: reading a pod's
// annotations (its own secrets-broker.io/* and vault-k8s's
// vault.hashicorp.com/*), the broker config they describe, and the
// containers, volumes and mounts it adds to the pod, as a JSON patch. It
// serves nothing: package inject/webhook answers the API server.
package inject

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/resource"
)

// The annotation prefixes read.
const (
	Own   = "secrets-broker.io/"
	Vault = "vault.hashicorp.com/"
)

// StatusAnnotation marks a pod the injector changed; a pod carrying it
// (or vault-k8s's agent-inject-status: injected) is left alone.
const StatusAnnotation = Own + "status"

// Limits on what annotations may ask for.
const (
	MaxOutputs        = 64
	MaxAnnotationsLen = 256 << 10 // Kubernetes' own bound on all of a pod's annotations
)

// Request is what a pod's annotations ask for.
type Request struct {
	// Style is the prefix the pod used (Own or Vault).
	Style        string
	Role         string
	AuthMount    string
	VaultAddress string
	Namespace    string
	CACert       string
	// CAPath is a directory of CA certificates (vault-k8s's ca-key,
	// which it writes as Vault Agent's ca_path).
	CAPath        string
	TLSServerName string
	ClientCert    string
	ClientKey     string
	// TLSSecret is a Secret mounted at TLSMountPath in the broker's
	// containers (vault-k8s's tls-secret).
	TLSSecret string
	Outputs   []Output
	// MountPath is where outputs appear in the app containers.
	MountPath string
	// InitOnly adds an init container (run --once) and no sidecar.
	InitOnly bool
	// Hold keeps the app containers from starting until every output is
	// rendered (false: vault-k8s's agent-pre-populate: "false").
	Hold bool
	// InitFirst puts the broker before the pod's own init containers.
	InitFirst bool
	// Containers limits the app containers the outputs are mounted into.
	Containers []string
	Requests   map[string]resource.Quantity
	Limits     map[string]resource.Quantity
	RunAsUser  *int64
	RunAsGroup *int64
	// SameUser runs the broker as the first app container's user.
	SameUser bool
	// CacheKey turns the restart cache on, sealed with this key.
	CacheKey string
	// StaticInterval is refresh.static_interval.
	StaticInterval time.Duration
	// Secrets are declared secrets (own annotations: secret-NAME).
	Secrets [][2]string
	// Warnings are annotations read but not acted on, said in the
	// admission response.
	Warnings []string
}

// Output is one file in MountPath.
type Output struct {
	File           string
	Template       string
	Secret         string // a declared secret rendered raw
	Mode           string
	MissingKeyOK   bool
	LeftDelimiter  string
	RightDelimiter string
}

// Error is an annotation the injector refuses: the pod is refused with it.
type Error struct {
	Annotation string
	Reason     string
}

func (e *Error) Error() string {
	if strings.HasPrefix(e.Annotation, Own) || strings.HasPrefix(e.Annotation, Vault) {
		return fmt.Sprintf("annotation %s: %s", e.Annotation, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Annotation, e.Reason)
}

func refuse(a, format string, args ...any) *Error {
	return &Error{Annotation: a, Reason: fmt.Sprintf(format, args...)}
}

// Wanted reports whether the annotations ask for injection, and whether
// the pod has it already (left alone).
func Wanted(ann map[string]string) (want, done bool) {
	done = ann[StatusAnnotation] == "injected" || ann[Vault+"agent-inject-status"] == "injected"
	own, _ := strconv.ParseBool(ann[Own+"inject"])
	vk, _ := strconv.ParseBool(ann[Vault+"agent-inject"])
	return own || vk, done
}

// Parse reads the annotations of a pod that asks for injection. Own
// annotations win when a pod carries both kinds; the other kind is then a
// warning. An annotation that cannot be honoured safely is an *Error.
func Parse(ann map[string]string, opts Options) (*Request, error) {
	size := 0
	for k, v := range ann {
		size += len(k) + len(v)
		if (strings.HasPrefix(k, Own) || strings.HasPrefix(k, Vault)) && (!utf8.ValidString(k) || !utf8.ValidString(v)) {
			return nil, refuse(strings.ToValidUTF8(k, "?"), "not valid UTF-8")
		}
	}
	if size > MaxAnnotationsLen {
		return nil, refuse("metadata.annotations", "%d bytes, more than the %d Kubernetes allows", size, MaxAnnotationsLen)
	}
	if own, _ := strconv.ParseBool(ann[Own+"inject"]); own {
		return parseOwn(ann, opts)
	}
	return parseVault(ann, opts)
}

// sortedKeys are the annotation names with prefix, sorted (messages and
// outputs come out in one order).
func sortedKeys(ann map[string]string, prefix string) []string {
	var ks []string
	for k := range ann {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

// parseBool reads a boolean annotation; callers treat an empty value as
// unset before calling it.
func parseBool(a, v string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, refuse(a, "%q is not true or false", v)
	}
	return b, nil
}

func parseQuantity(a, v string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(v)
	if err != nil || q.Sign() <= 0 {
		return resource.Quantity{}, refuse(a, "%q is not a positive Kubernetes quantity (e.g. 64Mi, 250m)", v)
	}
	return q, nil
}

func parseID(a, v string) (*int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > 1<<31-1 {
		return nil, refuse(a, "%q is not a user or group id (0 to 2147483647)", v)
	}
	if n == 0 {
		return nil, refuse(a, "0 is root: the broker runs as a non-root user (the restricted Pod Security Standard)")
	}
	return &n, nil
}

// parseMode is an octal file mode that lets nobody but the owner write.
func parseMode(a, v string) (string, error) {
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || m > 0o777 {
		return "", refuse(a, "%q is not an octal file mode such as 0644", v)
	}
	if m&0o022 != 0 {
		return "", refuse(a, "mode %s lets the group or others write the file; the app reads a secret, it never writes it (use 0644 or 0640)", v)
	}
	return fmt.Sprintf("%04o", m), nil
}

// checkFile is a file name beneath the mount path.
func checkFile(a, f string) error {
	if f == "" || len(f) > 253 || path.IsAbs(f) || path.Clean(f) != f || f == "." || strings.HasPrefix(f, "../") || f == ".." || strings.ContainsAny(f, "\x00\\") {
		return refuse(a, "file %q must be a relative path beneath the secrets volume (no .., no absolute path)", f)
	}
	return nil
}

// checkMountPath is an absolute directory for the outputs volume.
func checkMountPath(a, p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || len(p) > 253 || strings.ContainsAny(p, "\x00:") {
		return refuse(a, "%q must be an absolute directory other than / (e.g. /vault/secrets)", p)
	}
	return nil
}

// checkAuthPath turns auth/kubernetes (or kubernetes) into the mount.
func checkAuthPath(a, p string) (string, error) {
	m := strings.Trim(strings.TrimPrefix(strings.TrimPrefix(p, "/"), "auth/"), "/")
	if m == "" || strings.ContainsAny(m, " \t\n?#%") || strings.Contains(m, "..") {
		return "", refuse(a, "%q is not an auth mount path such as auth/kubernetes", p)
	}
	return m, nil
}

func parseDuration(a, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, refuse(a, "%q is not a positive duration such as 5m", v)
	}
	return d, nil
}
