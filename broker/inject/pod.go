package inject

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
)

// Names the injector gives what it adds.
const (
	ContainerName   = "secrets-broker"
	InitName        = "secrets-broker-init"
	SecretsVolume   = "secrets-broker-secrets"
	TokenVolume     = "secrets-broker-token"
	TLSVolume       = "secrets-broker-tls"
	CacheVolume     = "secrets-broker-cache"
	EnvConfigYAML   = "SECRETS_BROKER_CONFIG_YAML"
	binary          = "/secrets-broker"
	defaultUID      = 65532
	tokenExpiration = 3600
)

// Resources the broker's container gets unless the pod says otherwise:
// sized from bench/idle.sh (about 11 MiB idle with 100 secrets) and
// bench/peakrss (the largest input it reads bounded to 1 MiB per file).
var (
	defaultRequests = map[string]string{"cpu": "10m", "memory": "24Mi"}
	defaultLimits   = map[string]string{"memory": "64Mi"}
)

// Op is one JSON patch (RFC 6902) operation.
type Op struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Result is what the injector does to one pod.
type Result struct {
	// Patch is empty when the pod is left as it is.
	Patch    []Op
	Warnings []string
	// Config is the broker config put into the pod.
	Config []byte
}

// Mutate decides what to add to pod. A pod that does not ask for the
// broker, or already has it, gets no patch; a pod whose annotations cannot
// be honoured gets an *Error.
func Mutate(pod *corev1.Pod, opts Options) (*Result, error) {
	want, done := Wanted(pod.Annotations)
	if !want || done || hasContainer(pod, ContainerName) || hasContainer(pod, InitName) {
		return &Result{}, nil
	}
	r, err := Parse(pod.Annotations, opts)
	if err != nil {
		return nil, err
	}
	cfg, err := r.Config(opts)
	if err != nil {
		return nil, err
	}
	if err := validate(cfg); err != nil {
		return nil, err
	}
	for _, c := range r.Containers {
		if !slices.ContainsFunc(append(slices.Clone(pod.Spec.Containers), pod.Spec.InitContainers...), func(x corev1.Container) bool { return x.Name == c }) {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s%s: the pod has no container %q; skipped", r.Style, containersKey(r), c))
		}
	}
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, "secrets-broker-") {
			return nil, refuse("spec.volumes", "the volume name %s is the injector's own; rename it", v.Name)
		}
	}
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if strings.HasPrefix(m.Name, "secrets-broker-") {
				return nil, refuse("spec.containers", "container %s mounts %s, one of the injector's own volumes: the injector mounts the secrets (read-only) where they belong", c.Name, m.Name)
			}
		}
	}
	res := &Result{Warnings: r.Warnings, Config: cfg}
	broker, err := r.container(pod, opts, cfg)
	if err != nil {
		return nil, err
	}
	// The files go into the app's containers and, as vault-k8s does, its
	// own init containers (with init-first they run after the broker).
	// The injector's own containers are added after these operations and
	// keep their indices out of them: they are at the end, or at 0 with
	// init-first, which is why init containers are patched first.
	mount := corev1.VolumeMount{Name: SecretsVolume, MountPath: r.MountPath, ReadOnly: true}
	for _, group := range []struct {
		field string
		cs    []corev1.Container
	}{{"initContainers", pod.Spec.InitContainers}, {"containers", pod.Spec.Containers}} {
		for i, c := range group.cs {
			if len(r.Containers) > 0 && !slices.Contains(r.Containers, c.Name) {
				continue
			}
			if slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == r.MountPath }) {
				return nil, refuse(r.Style+mountKey(r), "container %s already mounts something at %s", c.Name, r.MountPath)
			}
			base := fmt.Sprintf("/spec/%s/%d/volumeMounts", group.field, i)
			if c.VolumeMounts == nil {
				res.Patch = append(res.Patch, Op{Op: "add", Path: base, Value: []corev1.VolumeMount{mount}})
			} else {
				res.Patch = append(res.Patch, Op{Op: "add", Path: base + "/-", Value: mount})
			}
		}
	}
	res.Patch = append(res.Patch, addVolumes(pod, r.volumes(opts))...)
	res.Patch = append(res.Patch, addInit(pod, broker, r.InitFirst)...)
	res.Patch = append(res.Patch, Op{Op: "add", Path: "/metadata/annotations/" + escape(StatusAnnotation), Value: "injected"})
	if r.Style == Vault {
		// vault-k8s reads this too: with both webhooks installed during a
		// migration, it leaves a pod the broker has alone.
		res.Patch = append(res.Patch, Op{Op: "add", Path: "/metadata/annotations/" + escape(Vault+"agent-inject-status"), Value: "injected"})
	}
	return res, nil
}

func containersKey(r *Request) string {
	if r.Style == Vault {
		return "agent-inject-containers"
	}
	return "containers"
}

func mountKey(r *Request) string {
	if r.Style == Vault {
		return "secret-volume-path"
	}
	return "mount-path"
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		if slices.ContainsFunc(cs, func(c corev1.Container) bool { return c.Name == name }) {
			return true
		}
	}
	return false
}

// validate checks the config the annotations describe as `validate` does
// (templates parsed, references checked, nothing contacted), so a pod whose
// template cannot work is refused now, not left crash-looping.
func validate(cfg []byte) error {
	c, err := config.Parse(cfg, "from the pod's annotations", "/")
	if err == nil {
		b := broker.New(c)
		_, err = b.Prepare()
		b.Close()
	}
	if err != nil {
		return refuse("metadata.annotations", "the broker config they describe does not validate: %v", err)
	}
	return nil
}

// escape is a JSON pointer token (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// container is the broker's container: a native sidecar (an init
// container that keeps running, restartPolicy: Always) or, init-only, an
// init container that renders once.
func (r *Request) container(pod *corev1.Pod, opts Options, cfg []byte) (corev1.Container, error) {
	uid, gid := int64(defaultUID), int64(defaultUID)
	if r.SameUser {
		u := firstUser(pod)
		if u == nil || *u == 0 {
			return corev1.Container{}, refuse(Vault+"agent-run-as-same-user", "the first app container has no non-root runAsUser to share")
		}
		uid = *u
	}
	if r.RunAsUser != nil {
		uid = *r.RunAsUser
	}
	if r.RunAsGroup != nil {
		gid = *r.RunAsGroup
	}
	no, yes := false, true
	c := corev1.Container{
		Name:            ContainerName,
		Image:           opts.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            []string{"run"},
		Env: []corev1.EnvVar{
			{Name: EnvConfigYAML, Value: string(cfg)},
			// What vault-k8s gives Vault Agent, for templates that read
			// them with env (a certificate's ip_sans, say).
			{Name: "NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot: &yes, RunAsUser: &uid, RunAsGroup: &gid,
			AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: SecretsVolume, MountPath: r.MountPath},
			{Name: TokenVolume, MountPath: TokenMountPath, ReadOnly: true},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if r.TLSSecret != "" {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: TLSVolume, MountPath: TLSMountPath, ReadOnly: true})
	}
	if r.CacheKey != "" {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: CacheVolume, MountPath: CacheMountPath})
	}
	var err error
	if c.Resources, err = r.resources(); err != nil {
		return c, err
	}
	if r.InitOnly {
		c.Name = InitName
		c.Args = []string{"run", "--once"}
		return c, nil
	}
	always := corev1.ContainerRestartPolicyAlways
	c.RestartPolicy = &always
	addr := "127.0.0.1:" + strconv.Itoa(opts.HealthPort)
	probe := func(period, failures int32, live bool) *corev1.Probe {
		cmd := []string{binary, "health", "--address", addr}
		if live {
			cmd = append(cmd, "--live")
		}
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}, PeriodSeconds: period, FailureThreshold: failures, TimeoutSeconds: 5}
	}
	if r.Hold {
		// The app's containers start only once this passes: every output
		// rendered (what vault-k8s's init container is for).
		c.StartupProbe = probe(1, 300, false)
	}
	c.ReadinessProbe = probe(10, 3, false)
	c.LivenessProbe = probe(30, 3, true)
	return c, nil
}

func firstUser(pod *corev1.Pod) *int64 {
	if len(pod.Spec.Containers) > 0 {
		if sc := pod.Spec.Containers[0].SecurityContext; sc != nil && sc.RunAsUser != nil {
			return sc.RunAsUser
		}
	}
	if sc := pod.Spec.SecurityContext; sc != nil {
		return sc.RunAsUser
	}
	return nil
}

func (r *Request) resources() (corev1.ResourceRequirements, error) {
	rr := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for k, v := range defaultRequests {
		rr.Requests[corev1.ResourceName(k)] = resource.MustParse(v)
	}
	for k, v := range defaultLimits {
		rr.Limits[corev1.ResourceName(k)] = resource.MustParse(v)
	}
	for k, q := range r.Requests {
		rr.Requests[corev1.ResourceName(k)] = q
	}
	for k, q := range r.Limits {
		rr.Limits[corev1.ResourceName(k)] = q
	}
	for k, req := range rr.Requests {
		if lim, ok := rr.Limits[k]; ok && req.Cmp(lim) > 0 {
			name := Own + "requests-" + string(k)
			if r.Style == Vault {
				name = Vault + "agent-requests-" + strings.Replace(string(k), "memory", "mem", 1)
			}
			return rr, refuse(name, "the %s request %s is above its limit %s", k, req.String(), lim.String())
		}
	}
	return rr, nil
}

// volumes are the memory-backed outputs volume, the projected token, and
// the TLS secret and restart cache when asked for.
func (r *Request) volumes(opts Options) []corev1.Volume {
	secretsSize, cacheSize := resource.MustParse("16Mi"), resource.MustParse("16Mi")
	exp := int64(tokenExpiration)
	vs := []corev1.Volume{
		{Name: SecretsVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &secretsSize}}},
		{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: opts.TokenAudience, ExpirationSeconds: &exp, Path: "token"}}}}}},
	}
	if r.TLSSecret != "" {
		vs = append(vs, corev1.Volume{Name: TLSVolume, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: r.TLSSecret}}})
	}
	if r.CacheKey != "" {
		vs = append(vs, corev1.Volume{Name: CacheVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &cacheSize}}})
	}
	return vs
}

func addInit(pod *corev1.Pod, c corev1.Container, first bool) []Op {
	switch {
	case len(pod.Spec.InitContainers) == 0:
		return []Op{{Op: "add", Path: "/spec/initContainers", Value: []corev1.Container{c}}}
	case first:
		return []Op{{Op: "add", Path: "/spec/initContainers/0", Value: c}}
	default:
		return []Op{{Op: "add", Path: "/spec/initContainers/-", Value: c}}
	}
}

func addVolumes(pod *corev1.Pod, vs []corev1.Volume) []Op {
	if len(pod.Spec.Volumes) == 0 {
		return []Op{{Op: "add", Path: "/spec/volumes", Value: vs}}
	}
	var ops []Op
	for _, v := range vs {
		ops = append(ops, Op{Op: "add", Path: "/spec/volumes/-", Value: v})
	}
	return ops
}

// JSON is the patch as the admission response carries it.
func (r *Result) JSON() ([]byte, error) {
	if len(r.Patch) == 0 {
		return nil, nil
	}
	return json.Marshal(r.Patch)
}
