package outdir_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker/outdir"
)

func TestBundleSwitchesAsOne(t *testing.T) {
	d, dir := openDir(t)
	specs := []outdir.Spec{spec("tls/tls.crt"), spec("tls/tls.key")}
	specs[0].Mode = 0o644
	write := func(n int) bool {
		t.Helper()
		changed, err := d.WriteBundle("tls", specs, [][]byte{[]byte(fmt.Sprint("crt-", n)), []byte(fmt.Sprint("key-", n))})
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	if !write(1) {
		t.Fatal("first write reported unchanged")
	}
	if write(1) {
		t.Fatal("unchanged bundle switched again")
	}
	link, err := os.Readlink(filepath.Join(dir, "tls", "tls.crt"))
	if err != nil || link != "..tls.data/tls.crt" {
		t.Fatalf("visible file is not a link through ..tls.data: %q %v", link, err)
	}
	if info, _ := os.Stat(filepath.Join(dir, "tls", "tls.crt")); info.Mode().Perm() != 0o644 {
		t.Fatalf("crt mode %o", info.Mode().Perm())
	}
	if info, _ := os.Stat(filepath.Join(dir, "tls", "tls.key")); info.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %o", info.Mode().Perm())
	}

	// A reader resolving both files through the link never sees a mixed pair
	// while the bundle switches 200 times.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var mixed, reads atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			v, err := os.Readlink(filepath.Join(dir, "tls", "..tls.data"))
			if err != nil {
				continue
			}
			crt, err1 := os.ReadFile(filepath.Join(dir, "tls", v, "tls.crt"))
			key, err2 := os.ReadFile(filepath.Join(dir, "tls", v, "tls.key"))
			if err1 != nil || err2 != nil {
				continue // that version was already cleaned up
			}
			reads.Add(1)
			if strings.TrimPrefix(string(crt), "crt-") != strings.TrimPrefix(string(key), "key-") {
				mixed.Add(1)
			}
		}
	}()
	last := 1
	for n := 2; n < 5000 && (n < 202 || reads.Load() < 50); n++ {
		write(n)
		last = n
	}
	close(stop)
	wg.Wait()
	if mixed.Load() > 0 || reads.Load() == 0 {
		t.Fatalf("%d mixed pairs in %d reads", mixed.Load(), reads.Load())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "tls", "tls.key")); string(b) != fmt.Sprint("key-", last) {
		t.Fatalf("key = %q", b)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "tls"))
	if len(entries) != 4 { // tls.crt, tls.key, ..tls.data, one version directory
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("old versions left behind: %v", names)
	}
}
