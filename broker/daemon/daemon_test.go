package daemon_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/daemon"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

// daemonRun starts daemon.Run in the background and records its passes.
type daemonRun struct {
	mu     sync.Mutex
	passes []broker.Report
	reload chan struct{}
	done   chan error
	cancel context.CancelFunc
	logs   *brokertest.Buffer
}

func startDaemon(t *testing.T, configPath string) *daemonRun {
	return startDaemonWith(t, configPath, func(o daemon.Options) daemon.Options { return o })
}

func startDaemonWith(t *testing.T, configPath string, opts func(daemon.Options) daemon.Options) *daemonRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemonRun{reload: make(chan struct{}, 1), done: make(chan error, 1), cancel: cancel, logs: &brokertest.Buffer{}}
	go func() {
		d.done <- daemon.Run(ctx, opts(daemon.Options{
			Config: config.Source{Path: configPath}, Timeout: 5 * time.Second, Reload: d.reload,
			Logger: slog.New(slog.NewTextHandler(d.logs, nil)),
			Rendered: func(r broker.Report) {
				d.mu.Lock()
				d.passes = append(d.passes, r)
				d.mu.Unlock()
			},
		}))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-d.done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("daemon did not stop")
		}
	})
	return d
}

// eventually polls cond for up to limit (a wait for a background effect, not
// a timing assertion).
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eventuallyLogged is eventually, printing the daemon's log when it times
// out, so a failure under load says what the daemon was doing.
func (d *daemonRun) eventuallyLogged(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; daemon log:\n%s", what, d.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileIs(p, want string) func() bool {
	return func() bool {
		b, err := os.ReadFile(p)
		return err == nil && string(b) == want
	}
}

func reseal(t *testing.T, dir string, values ...string) {
	t.Helper()
	k, err := local.Load(filepath.Join(dir, "local.key"))
	if err != nil {
		t.Fatal(err)
	}
	var plain []envelope.Plain
	for i := 0; i+1 < len(values); i += 2 {
		plain = append(plain, envelope.Plain{Name: values[i], Value: []byte(values[i+1])})
	}
	f, err := envelope.SealFile(context.Background(), plain, nil, k)
	if err != nil {
		t.Fatal(err)
	}
	// Replace atomically, as an editor or a config-management tool would.
	tmp := filepath.Join(dir, ".secrets.tmp")
	os.WriteFile(tmp, f.MarshalYAML(), 0o600)
	os.Rename(tmp, filepath.Join(dir, "secrets.enc.yaml"))
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Without inotify (a node past fs.inotify.max_user_instances for the
// user) the daemon polls instead of exiting: a changed source reaches its
// output, a deleted output is written back, and a changed config reloads.
func TestDaemonPollsWhenInotifyRunsOut(t *testing.T) {
	dir := brokertest.LocalDir(t)
	cfgPath := filepath.Join(dir, "broker.yaml")
	os.WriteFile(filepath.Join(dir, "token"), []byte("token-1"), 0o600)
	os.WriteFile(cfgPath, []byte("output_root: out\nsecrets:\n  token: file:token\noutputs:\n  - path: token.txt\n    secret: token\n"), 0o600)
	d := startDaemonWith(t, cfgPath, daemon.WithoutInotify)
	out := filepath.Join(dir, "out", "token.txt")
	eventually(t, 10*time.Second, "first render", fileIs(out, "token-1"))
	d.eventuallyLogged(t, 10*time.Second, "the fallback logged", func() bool { return strings.Contains(d.logs.String(), "polling the watched files") })
	os.WriteFile(filepath.Join(dir, "token"), []byte("token-2"), 0o600)
	d.eventuallyLogged(t, 20*time.Second, "a changed source re-read by polling", fileIs(out, "token-2"))
	os.Remove(out)
	d.eventuallyLogged(t, 20*time.Second, "a deleted output written back", fileIs(out, "token-2"))
	os.WriteFile(cfgPath, []byte("output_root: out\nsecrets:\n  token: file:token\noutputs:\n  - path: token.txt\n    secret: token\n  - path: copy.txt\n    secret: token\n"), 0o600)
	d.eventuallyLogged(t, 20*time.Second, "a changed config reloaded", fileIs(filepath.Join(dir, "out", "copy.txt"), "token-2"))
}

func TestDaemonWatchesFilesNotifiesAndReloads(t *testing.T) {
	dir := brokertest.LocalDir(t)
	addr := freeAddr(t)
	notifyLog := filepath.Join(dir, "notified")
	cfgText := `output_root: out
refresh:
  wait: {min: 200ms, max: 2s}
  metrics_address: ` + addr + `
secrets:
  db_password: envelope:secrets.enc.yaml#db_password
  api_key: envelope:secrets.enc.yaml#api_key
  token: file:token
outputs:
  - path: app.env
    secrets: [db_password, api_key]
    notify:
      command: ["/bin/sh", "-c", "echo changed >> ` + notifyLog + `"]
  - path: token.txt
    secret: token
`
	cfgPath := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfgPath, []byte(cfgText), 0o600)
	d := startDaemon(t, cfgPath)
	env := filepath.Join(dir, "out", "app.env")
	eventually(t, 10*time.Second, "first render", fileIs(env, "db_password=\"p\\\"w\\$1\"\napi_key=\"ak-123\"\n"))
	if _, err := os.Stat(notifyLog); err == nil {
		t.Fatal("notify ran for the initial render")
	}

	// Five quick changes of the sealed file: debounced into few passes and
	// at most two notifications.
	d.mu.Lock()
	before := len(d.passes)
	d.mu.Unlock()
	for i := range 5 {
		reseal(t, dir, "db_password", "pw-"+string(rune('a'+i)), "api_key", "ak-123")
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, 10*time.Second, "re-render after the file changed", fileIs(env, "db_password=\"pw-e\"\napi_key=\"ak-123\"\n"))
	eventually(t, 5*time.Second, "notify", func() bool { b, _ := os.ReadFile(notifyLog); return len(b) > 0 })
	time.Sleep(500 * time.Millisecond)
	if b, _ := os.ReadFile(notifyLog); strings.Count(string(b), "changed") > 2 {
		t.Fatalf("notify ran %d times for one burst of changes", strings.Count(string(b), "changed"))
	}
	d.mu.Lock()
	if n := len(d.passes) - before; n > 2 {
		t.Fatalf("%d render passes for one burst of 5 changes (wait.min 200ms)", n)
	}
	d.mu.Unlock()

	// A plain file changes: only its output is rewritten, no notify for it.
	info, _ := os.Stat(env)
	os.WriteFile(filepath.Join(dir, "token"), []byte("token-2"), 0o600)
	eventually(t, 10*time.Second, "token re-render", fileIs(filepath.Join(dir, "out", "token.txt"), "token-2"))
	if after, _ := os.Stat(env); !after.ModTime().Equal(info.ModTime()) {
		t.Fatal("an unchanged output was rewritten")
	}

	// Metrics and health.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"secrets_broker_output_writes_total", "secrets_broker_render_passes_total{result=\"ok\"}", "secrets_broker_notifications_total 1", `secrets_broker_fetches_total{source="envelope"}`} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(string(body), "pw-e") {
		t.Fatal("a value in metrics")
	}
	resp, err = http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, resp.Status)
	}
	resp.Body.Close()

	// A broken config is not taken; the running one stays.
	os.WriteFile(cfgPath, []byte(cfgText+"bogus: 1\n"), 0o600)
	eventually(t, 10*time.Second, "reload error logged", func() bool { return strings.Contains(d.logs.String(), "configuration not reloaded") })
	reseal(t, dir, "db_password", "pw-after-bad-reload", "api_key", "ak-123")
	eventually(t, 10*time.Second, "still rendering", fileIs(env, "db_password=\"pw-after-bad-reload\"\napi_key=\"ak-123\"\n"))

	// A good config with one more output: SIGHUP-style reload picks it up.
	os.WriteFile(cfgPath, []byte(cfgText+"  - path: key.json\n    format: json\n    secrets: [api_key]\n"), 0o600)
	d.reload <- struct{}{}
	eventually(t, 10*time.Second, "new output after reload", fileIs(filepath.Join(dir, "out", "key.json"), "{\n  \"api_key\": \"ak-123\"\n}\n"))
	if strings.Contains(d.logs.String(), "pw-") || strings.Contains(d.logs.String(), "ak-123") {
		t.Fatalf("a value in the logs:\n%s", d.logs.String())
	}
}

// A refresh of one secret renders the outputs that use it, not every
// output: the cost of a refresh is O(outputs that use it).
func TestRefreshRendersOnlyTheOutputsThatUseTheSecret(t *testing.T) {
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("output_root: out\nsecrets:\n")
	for i := range 100 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("s%03d", i)), []byte("v0"), 0o600)
		fmt.Fprintf(&cfg, "  s%03d: file:s%03d\n", i, i)
	}
	cfg.WriteString("outputs:\n")
	for i := range 100 {
		fmt.Fprintf(&cfg, "  - path: o%03d.txt\n    secret: s%03d\n", i, i)
	}
	// Two more outputs read s007: a template and a bundle member, whose
	// bundle partner switches with it.
	cfg.WriteString("  - path: t.txt\n    template_text: '{{ secret \"s007\" }}'\n")
	cfg.WriteString("  - path: b/cert\n    secret: s007\n    bundle: tls\n  - path: b/key\n    secret: s008\n    bundle: tls\n")
	p := filepath.Join(dir, "broker.yaml")
	os.WriteFile(p, []byte(cfg.String()), 0o600)
	d := startDaemon(t, p)
	d.eventuallyLogged(t, 30*time.Second, "first render", func() bool { return d.passCount() >= 1 })
	if n := len(d.pass(0).Results); n != 103 {
		t.Fatalf("the first pass rendered %d outputs, want all 103", n)
	}
	before := d.passCount()
	change := func(name string) {
		// The watcher starts after the first pass: write again (the same
		// value, which changes nothing more) until the change is seen.
		out := filepath.Join(dir, "out", "o"+name[1:]+".txt")
		d.eventuallyLogged(t, time.Minute, out+" rewritten", func() bool {
			os.WriteFile(filepath.Join(dir, name+".tmp"), []byte("v1"), 0o600)
			os.Rename(filepath.Join(dir, name+".tmp"), filepath.Join(dir, name))
			deadline := time.Now().Add(2 * time.Second)
			for !fileIs(out, "v1")() {
				if time.Now().After(deadline) {
					return false
				}
				time.Sleep(20 * time.Millisecond)
			}
			return true
		})
	}
	change("s007")
	d.eventuallyLogged(t, 30*time.Second, "the pass to be recorded", func() bool { return d.passCount() > before })
	var got []string
	for _, r := range d.pass(before).Results {
		got = append(got, r.Path)
	}
	slices.Sort(got)
	if want := []string{"b/cert", "b/key", "o007.txt", "t.txt"}; !slices.Equal(got, want) {
		t.Fatalf("the refresh of s007 rendered %v, want only %v", got, want)
	}
	// The events of its own writes make the daemon look at those outputs
	// again (finding them unchanged), never at every output. A marker
	// change, later, proves those passes have happened.
	change("s050")
	for i := before; i < d.passCount(); i++ {
		if n := len(d.pass(i).Results); n > 4 {
			t.Fatalf("pass %d after the first rendered %d outputs; a refresh must render only what it touches", i, n)
		}
	}
}

func (d *daemonRun) passCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.passes)
}

func (d *daemonRun) pass(i int) broker.Report {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passes[i]
}

// Notify signals the process a pid file names only when it belongs to the
// pid file's owner: an app that can write its pid file cannot make a root
// broker signal another user's process. Fails on c5e921c, which signalled
// whatever pid the file held.
func TestNotifySignalsOnlyThePIDFileOwnersProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes a pid file another uid owns (chown): run it as root, as CI does")
	}
	dir := t.TempDir()
	pidFile, got := filepath.Join(dir, "app.pid"), filepath.Join(dir, "signals")
	victim := exec.Command("/bin/sh", "-c", `trap 'echo usr1 >> "$1"' USR1; echo ready >> "$1"; while :; do sleep 0.05; done`, "sh", got)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
	eventually(t, 5*time.Second, "the target's trap", func() bool { b, _ := os.ReadFile(got); return strings.Contains(string(b), "ready") })
	os.WriteFile(pidFile, []byte(strconv.Itoa(victim.Process.Pid)+"\n"), 0o644)
	os.Chown(pidFile, 65534, 65534) // written by an app running as nobody
	os.WriteFile(filepath.Join(dir, "token"), []byte("one"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(`output_root: out
refresh: {wait: {min: 50ms, max: 1s}}
secrets:
  token: file:token
outputs:
  - path: token.txt
    secret: token
    notify: {signal: USR1, pid_file: app.pid}
`), 0o600)
	d := startDaemon(t, cfg)
	out := filepath.Join(dir, "out", "token.txt")
	d.eventuallyLogged(t, 10*time.Second, "first render", fileIs(out, "one"))

	os.WriteFile(filepath.Join(dir, "token"), []byte("two"), 0o600)
	d.eventuallyLogged(t, 10*time.Second, "the refusal logged", func() bool {
		return strings.Contains(d.logs.String(), "names process "+strconv.Itoa(victim.Process.Pid)+" of uid 0: not signalled")
	})
	if b, _ := os.ReadFile(got); strings.Contains(string(b), "usr1") {
		t.Fatal("a root process was signalled through a pid file nobody owns")
	}

	// The app makes its pid file a link to a root-owned pid file (say
	// /run/sshd.pid) that names the root process: not followed. Failed
	// before the review's fix: the link's target was read and its owner
	// (root) matched the process's.
	rootPID := filepath.Join(dir, "sshd.pid")
	os.WriteFile(rootPID, []byte(strconv.Itoa(victim.Process.Pid)+"\n"), 0o644)
	os.Remove(pidFile)
	os.Symlink(rootPID, pidFile)
	os.Lchown(pidFile, 65534, 65534)
	os.WriteFile(filepath.Join(dir, "token"), []byte("two-b"), 0o600)
	d.eventuallyLogged(t, 10*time.Second, "the link refused", func() bool {
		return strings.Contains(d.logs.String(), "is a symbolic link: not followed")
	})
	// A hard link to it (where the file system allows one): refused too.
	os.Remove(pidFile)
	if os.Link(rootPID, pidFile) == nil {
		os.WriteFile(filepath.Join(dir, "token"), []byte("two-c"), 0o600)
		d.eventuallyLogged(t, 10*time.Second, "the hard link refused", func() bool {
			return strings.Contains(d.logs.String(), "hard links: not used")
		})
		os.Remove(pidFile)
	}
	if b, _ := os.ReadFile(got); strings.Contains(string(b), "usr1") {
		t.Fatal("a root process was signalled through a linked pid file")
	}

	os.WriteFile(pidFile, []byte(strconv.Itoa(victim.Process.Pid)+"\n"), 0o644)
	os.Chown(pidFile, 0, 0) // the process's own user wrote it
	os.WriteFile(filepath.Join(dir, "token"), []byte("three"), 0o600)
	d.eventuallyLogged(t, 10*time.Second, "the owner's process signalled", func() bool {
		b, _ := os.ReadFile(got)
		return strings.Contains(string(b), "usr1")
	})
}
