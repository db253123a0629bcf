package daemon_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/daemon"
	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/brokertest"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/kmsfake"
	"github.com/secrets-broker/secrets-broker/providers/awskms"
)

func healthz(t *testing.T, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// An emptied file: source gets one answer in every output: the last good
// value stays, the log names the secret, /healthz says so. (It was refused
// in a raw output but written empty into a dotenv one.)
func TestDaemonEmptiedSourceKeepsLastGoodValueEverywhere(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	os.WriteFile(filepath.Join(dir, "token"), []byte("tok-1"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(`output_root: out
refresh:
  metrics_address: `+addr+`
secrets:
  token: file:token
outputs:
  - path: token.txt
    secret: token
  - path: all.env
    secrets: [token]
`), 0o600)
	d := startDaemon(t, cfg)
	raw, env := filepath.Join(dir, "out", "token.txt"), filepath.Join(dir, "out", "all.env")
	eventually(t, 20*time.Second, "first render", func() bool { return fileIs(raw, "tok-1")() && fileIs(env, "token=\"tok-1\"\n")() })
	replace := func(content string) {
		tmp := filepath.Join(dir, ".token.tmp")
		os.WriteFile(tmp, []byte(content), 0o600)
		os.Rename(tmp, filepath.Join(dir, "token"))
	}
	replace("")
	eventually(t, 20*time.Second, "healthz to report the stale secret", func() bool {
		code, body := healthz(t, addr)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "token (not-found)")
	})
	if !fileIs(raw, "tok-1")() || !fileIs(env, "token=\"tok-1\"\n")() {
		a, _ := os.ReadFile(raw)
		b, _ := os.ReadFile(env)
		t.Fatalf("outputs changed: %q %q", a, b)
	}
	if logs := d.logs.String(); !strings.Contains(logs, "secret=token") || !strings.Contains(logs, "is empty") {
		t.Fatalf("log does not name the secret: %s", logs)
	}
	replace("tok-2")
	eventually(t, 20*time.Second, "new value everywhere and healthz ok", func() bool {
		code, _ := healthz(t, addr)
		return code == http.StatusOK && fileIs(raw, "tok-2")() && fileIs(env, "token=\"tok-2\"\n")()
	})
}

// The file never chooses its name: an envelope of another secret copied
// over a single-envelope file is refused (exit 4) naming both, in render,
// exec and the daemon (which keeps the last good value).
func TestSingleEnvelopeNameIsChecked(t *testing.T) {
	dir := t.TempDir()
	k := brokertest.LocalKey(t, dir)
	seal := func(name, value string) string {
		e, err := envelope.Seal(context.Background(), []byte(value), envelope.Binding{Name: name}, k)
		if err != nil {
			t.Fatal(err)
		}
		return e.String() + "\n"
	}
	os.WriteFile(filepath.Join(dir, "db.sbe"), []byte(seal("db_password", "pw-1")), 0o600)
	os.WriteFile(filepath.Join(dir, "pinned.sbe"), []byte(seal("prod/db", "pw-2")), 0o600)
	cfgText := `output_root: out
secrets:
  db_password: envelope:db.sbe
  other: envelope:pinned.sbe?name=prod/db
outputs:
  - path: db.txt
    secret: db_password
  - path: other.txt
    secret: other
`
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(cfgText), 0o600)
	load := func() *broker.Broker {
		c, err := config.Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		b := broker.New(c)
		t.Cleanup(b.Close)
		return b
	}
	if _, err := load().RenderOnce(context.Background(), broker.RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	if !fileIs(filepath.Join(dir, "out", "other.txt"), "pw-2")() {
		t.Fatal("?name= pinned envelope not rendered")
	}
	// The attacker copies the api_key envelope over db.sbe.
	os.WriteFile(filepath.Join(dir, "db.sbe"), []byte(seal("api_key", "api-secret")), 0o600)
	_, err := load().RenderOnce(context.Background(), broker.RenderOptions{})
	if fail.KindOf(err) != fail.Integrity || !strings.Contains(err.Error(), `"db_password"`) || !strings.Contains(err.Error(), `"api_key"`) {
		t.Fatalf("render: %v (%s)", err, fail.KindOf(err))
	}
	if !fileIs(filepath.Join(dir, "out", "db.txt"), "pw-1")() {
		t.Fatal("the swapped secret was written")
	}
	err = load().Exec(context.Background(), broker.ExecOptions{Command: []string{"/bin/true"}, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard})
	if fail.KindOf(err) != fail.Integrity || !strings.Contains(err.Error(), `sealed for secret "api_key"`) {
		t.Fatalf("exec: %v", err)
	}
	// The daemon: the right envelope, then the swap, replaced atomically.
	os.WriteFile(filepath.Join(dir, "db.sbe"), []byte(seal("db_password", "pw-3")), 0o600)
	d := startDaemon(t, cfg)
	eventually(t, 20*time.Second, "daemon render", fileIs(filepath.Join(dir, "out", "db.txt"), "pw-3"))
	tmp := filepath.Join(dir, ".db.tmp")
	os.WriteFile(tmp, []byte(seal("api_key", "api-secret")), 0o600)
	os.Rename(tmp, filepath.Join(dir, "db.sbe"))
	eventually(t, 20*time.Second, "the daemon to refuse the swapped envelope", func() bool {
		return strings.Contains(d.logs.String(), `sealed for secret \"api_key\"`)
	})
	if !fileIs(filepath.Join(dir, "out", "db.txt"), "pw-3")() {
		t.Fatal("the daemon wrote the swapped secret")
	}
}

// A reload starts from an empty data-key cache: a KMS key revoked before
// the reload is asked again, not served from memory.
func TestReloadPurgesTheDataKeyCache(t *testing.T) {
	srv := kmsfake.Start()
	t.Cleanup(srv.Close)
	arn := srv.CreateKey("us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_KMS", srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	dir := t.TempDir()
	k, err := awskms.New(context.Background(), arn)
	if err != nil {
		t.Fatal(err)
	}
	f, err := envelope.SealFile(context.Background(), []envelope.Plain{{Name: "db", Value: []byte("pw")}}, nil, k)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "s.enc.yaml"), f.MarshalYAML(), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("output_root: out\nkeys: [\"awskms:"+arn+"\"]\nsecrets:\n  db: envelope:s.enc.yaml#db\noutputs:\n  - path: db.txt\n    secret: db\n"), 0o600)
	d := startDaemon(t, cfg)
	eventually(t, 20*time.Second, "first render", fileIs(filepath.Join(dir, "out", "db.txt"), "pw"))
	before := srv.Calls("Decrypt")
	if before == 0 {
		t.Fatal("no KMS Decrypt call")
	}
	srv.Disable(arn, true)
	d.reload <- struct{}{}
	eventually(t, 20*time.Second, "the reload to ask KMS again", func() bool {
		return strings.Contains(d.logs.String(), "cannot be used now")
	})
	if !fileIs(filepath.Join(dir, "out", "db.txt"), "pw")() {
		t.Fatal("previous output not kept")
	}
}

// An output someone deletes or changes is written back by the daemon, with
// a log line and a metric, and the app is not notified (its secret did not
// change).
func TestDaemonRestoresDeletedOrTamperedOutputs(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	os.WriteFile(filepath.Join(dir, "tok"), []byte("tok-1"), 0o600)
	notified := filepath.Join(dir, "notified")
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(`output_root: out
refresh:
  metrics_address: `+addr+`
secrets:
  tok: file:tok
outputs:
  - path: app/tok.txt
    secret: tok
    notify: {command: [/bin/sh, -c, "echo x >> `+notified+`"]}
  - {path: tls/a.pem, secret: tok, bundle: tls}
`), 0o600)
	d := startDaemon(t, cfg)
	out := filepath.Join(dir, "out", "app", "tok.txt")
	bundled := filepath.Join(dir, "out", "tls", "a.pem")
	d.eventuallyLogged(t, 20*time.Second, "first render", func() bool { return fileIs(out, "tok-1")() && fileIs(bundled, "tok-1")() })
	os.Remove(out)
	d.eventuallyLogged(t, 20*time.Second, "the deleted output restored", fileIs(out, "tok-1"))
	os.WriteFile(out, []byte("tampered"), 0o600)
	d.eventuallyLogged(t, 20*time.Second, "the tampered output restored", fileIs(out, "tok-1"))
	os.RemoveAll(filepath.Join(dir, "out", "app"))
	d.eventuallyLogged(t, 20*time.Second, "the output restored with its directory", fileIs(out, "tok-1"))
	os.Remove(bundled)
	d.eventuallyLogged(t, 20*time.Second, "the bundle link restored", fileIs(bundled, "tok-1"))
	d.eventuallyLogged(t, 20*time.Second, "restores counted", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "secrets_broker_output_restores_total 4")
	})
	if !strings.Contains(d.logs.String(), "restored") {
		t.Fatalf("no log line for the restore:\n%s", d.logs.String())
	}
	if _, err := os.Stat(notified); err == nil {
		t.Fatal("the app was notified of a restore")
	}
}

// A reload that changes a file runs that file's notify (issue 9); the first
// render at start does not.
func TestReloadThatChangesAFileNotifies(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tok"), []byte("tok-1"), 0o600)
	os.WriteFile(filepath.Join(dir, "app.tmpl"), []byte("v1 {{ secret \"tok\" }}"), 0o600)
	notified := filepath.Join(dir, "notified")
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte(`output_root: out
secrets:
  tok: file:tok
outputs:
  - path: app.conf
    template: app.tmpl
    notify: {command: [/bin/sh, -c, "echo x >> `+notified+`"]}
`), 0o600)
	d := startDaemon(t, cfg)
	out := filepath.Join(dir, "out", "app.conf")
	d.eventuallyLogged(t, 20*time.Second, "first render", fileIs(out, "v1 tok-1"))
	if _, err := os.Stat(notified); err == nil {
		t.Fatal("the first render notified")
	}
	tmp := filepath.Join(dir, ".app.tmpl.new")
	os.WriteFile(tmp, []byte("v2 {{ secret \"tok\" }}"), 0o600)
	os.Rename(tmp, filepath.Join(dir, "app.tmpl"))
	d.eventuallyLogged(t, 20*time.Second, "the reload to render and notify", func() bool {
		b, _ := os.ReadFile(notified)
		return fileIs(out, "v2 tok-1")() && string(b) == "x\n"
	})
}

// A template changed after the daemon read it but before its file watches
// existed (between the first render and the watcher's start) is still
// seen: the daemon compares modification times once the watches are in
// place. The test changes the template from inside the first render's
// report, which runs in exactly that window. Found under load, where
// TestReloadThatChangesAFileNotifies missed its reload now and then.
func TestChangeBeforeTheWatchesExistIsSeen(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tok"), []byte("tok-1"), 0o600)
	tmpl := filepath.Join(dir, "app.tmpl")
	os.WriteFile(tmpl, []byte("v1 {{ secret \"tok\" }}"), 0o600)
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("output_root: out\nsecrets:\n  tok: file:tok\noutputs:\n  - path: app.conf\n    template: app.tmpl\n"), 0o600)
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{
			Config: config.Source{Path: cfg}, Timeout: 5 * time.Second,
			Logger: slog.New(slog.DiscardHandler),
			Rendered: func(broker.Report) {
				once.Do(func() { os.WriteFile(tmpl, []byte("v2 {{ secret \"tok\" }}"), 0o600) })
			},
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	eventually(t, 20*time.Second, "the change made before the watches existed", fileIs(filepath.Join(dir, "out", "app.conf"), "v2 tok-1"))
}
