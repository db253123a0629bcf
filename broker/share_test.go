package broker_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
)

// An app container running as another user reads the outputs through a
// shared group (a pod's fsGroup): directories 0750 and the group, files
// 0640 and the group, bundles included. The reader runs as nobody, with the
// group and without it.
func TestOtherUserReadsOutputsThroughTheGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the reader as nobody (CI runs as root)")
	}
	const gid = 4242
	dir := t.TempDir()
	// Let nobody reach the test directory itself.
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret"), 0o600)
	os.WriteFile(filepath.Join(dir, "crt"), []byte("CERT"), 0o600)
	os.WriteFile(filepath.Join(dir, "key"), []byte("KEY"), 0o600)
	cfgPath := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfgPath, []byte(`output_root: out
dir_group: "4242"
secrets:
  pw: file:pw
  crt: file:crt
  key: file:key
outputs:
  - {path: app/config.txt, secret: pw, mode: "0640", group: "4242"}
  - {path: tls/tls.crt, secret: crt, mode: "0640", group: "4242", bundle: tls}
  - {path: tls/tls.key, secret: key, mode: "0640", group: "4242", bundle: tls}
`), 0o600)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	b := broker.New(cfg)
	defer b.Close()
	if _, err := b.RenderOnce(context.Background(), broker.RenderOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"out", "out/app", "out/tls"} {
		info, err := os.Stat(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o750 || info.Sys().(*syscall.Stat_t).Gid != gid {
			t.Fatalf("%s: mode %o group %d, want 0750 and %d", d, info.Mode().Perm(), info.Sys().(*syscall.Stat_t).Gid, gid)
		}
	}
	read := func(groups []uint32, p string) (string, error) {
		cmd := exec.Command("/bin/cat", filepath.Join(dir, "out", p))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for p, want := range map[string]string{"app/config.txt": "s3cret", "tls/tls.crt": "CERT", "tls/tls.key": "KEY"} {
		if got, err := read([]uint32{gid}, p); err != nil || got != want {
			t.Errorf("nobody with group %d reading %s: %q %v", gid, p, got, err)
		}
		if got, err := read(nil, p); err == nil || !strings.Contains(got, "Permission denied") {
			t.Errorf("nobody without the group read %s: %q %v", p, got, err)
		}
	}
}

// Setting an owner without the right says what is missing.
func TestChownWithoutCapabilitySaysCAPCHOWN(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start the writer as nobody (CI runs as root)")
	}
	dir := t.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	os.Chown(dir, 65534, 65534)
	os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret"), 0o644)
	os.WriteFile(filepath.Join(dir, "broker.yaml"), []byte("output_root: out\nsecrets:\n  pw: file:pw\noutputs:\n  - {path: pw.txt, secret: pw, user: \"0\"}\n"), 0o644)
	bin := filepath.Join(dir, "secrets-broker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/secrets-broker").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "run", "--once", "-c", filepath.Join(dir, "broker.yaml"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = append(os.Environ(), "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CAP_CHOWN") {
		t.Fatalf("run --once as nobody with user: 0: %v\n%s", err, out)
	}
}
