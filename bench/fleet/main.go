// Command fleet simulates a fleet: it starts N secrets-broker daemons at
// once against one Vault dev server (with a real PostgreSQL behind its
// database engine), each holding a database lease with a short TTL, and
// records Vault's request rate per second from Vault's own audit log over
// a few TTLs after the last daemon rendered. It prints the start burst and,
// for the steady window, the mean and peak requests per second and their
// ratio (issue 9's target: peak <= 2x mean). With -baseline it runs the
// same simulation with a second binary (another commit's build) first, in
// the same run, and prints both.
//
//	go run ./bench/fleet -broker bin/secrets-broker [-baseline old/secrets-broker] [-n 200] [-ttl 10s] [-cycles 4]
//
// bench/fleet.sh builds the binaries and runs it.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/bench/rate"
	"github.com/secrets-broker/secrets-broker/internal/pgtest"
	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
)

type stats struct {
	daemons  int
	startup  time.Duration // first start to last rendered output
	burst    int           // requests before the window
	window   time.Duration
	requests int
	mean     float64
	peak     int
}

func main() {
	broker := flag.String("broker", "", "secrets-broker binary to run")
	baseline := flag.String("baseline", "", "a second binary, run first in the same way (e.g. an older commit)")
	n := flag.Int("n", 200, "daemons")
	ttl := flag.Duration("ttl", 10*time.Second, "database lease TTL")
	cycles := flag.Int("cycles", 4, "TTLs to record after the last daemon rendered")
	flag.Parse()
	if *broker == "" {
		log.Fatal("fleet: -broker is required")
	}
	type run struct {
		label, bin string
	}
	runs := []run{{"secrets-broker", *broker}}
	if *baseline != "" {
		runs = append([]run{{"baseline", *baseline}}, runs...)
	}
	fmt.Printf("%d daemons, database lease TTL %s, recording %d TTLs after the last one rendered\n", *n, *ttl, *cycles)
	fmt.Printf("%-15s %9s %7s %9s %8s %7s %6s\n", "binary", "startup", "burst", "requests", "mean/s", "peak/s", "peak/mean")
	for _, r := range runs {
		st, err := simulate(r.bin, *n, *ttl, *cycles)
		if err != nil {
			log.Fatalf("fleet: %s: %v", r.label, err)
		}
		fmt.Printf("%-15s %8.1fs %7d %9d %8.1f %7d %6.2fx\n", r.label, st.startup.Seconds(), st.burst, st.requests, st.mean, st.peak, float64(st.peak)/st.mean)
	}
}

func simulate(bin string, n int, ttl time.Duration, cycles int) (stats, error) {
	ctx := context.Background()
	pg, err := pgtest.Launch()
	if err != nil {
		return stats{}, err
	}
	defer pg.Stop()
	v, err := vaulttest.Launch(ctx)
	if err != nil {
		return stats{}, err
	}
	defer v.Stop()
	if err := v.ConfigureDatabase(pg.Port, pg.User, pg.Password, ttl.String(), "1h"); err != nil {
		return stats{}, err
	}
	work, err := os.MkdirTemp("", "fleet-")
	if err != nil {
		return stats{}, err
	}
	defer os.RemoveAll(work)
	audit := filepath.Join(work, "audit.log")
	root, err := v.NewClient(v.Token)
	if err != nil {
		return stats{}, err
	}
	if err := root.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": audit}}); err != nil {
		return stats{}, fmt.Errorf("enable the audit log: %w", err)
	}
	os.WriteFile(filepath.Join(work, "token"), []byte(v.Token), 0o600)

	// Each daemon watches its files with one inotify instance: a limit
	// below the fleet would make some daemons exit at start.
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances"); err == nil {
		if limit, _ := strconv.Atoi(strings.TrimSpace(string(b))); limit > 0 && limit < n+16 {
			return stats{}, fmt.Errorf("fs.inotify.max_user_instances is %d, fewer than %d daemons need: raise it (sysctl -w fs.inotify.max_user_instances=%d) or lower -n", limit, n, n+128)
		}
	}
	cmds := make([]*exec.Cmd, n)
	outs := make([]string, n)
	for i := range n {
		dir := filepath.Join(work, strconv.Itoa(i))
		os.MkdirAll(dir, 0o700)
		cfg := fmt.Sprintf("vault:\n  address: %s\n  auth: {method: token, token_file: %s}\noutput_root: out\nsecrets:\n  DB_USER: vault:database/creds/app#username\noutputs:\n  - path: db.env\n",
			v.Addr, filepath.Join(work, "token"))
		os.WriteFile(filepath.Join(dir, "broker.yaml"), []byte(cfg), 0o600)
		logf, err := os.Create(filepath.Join(dir, "log"))
		if err != nil {
			return stats{}, err
		}
		defer logf.Close()
		cmds[i] = exec.Command(bin, "run", "-c", filepath.Join(dir, "broker.yaml"))
		cmds[i].Env = []string{"HOME=" + dir, "PATH=" + os.Getenv("PATH")}
		cmds[i].Stdout, cmds[i].Stderr = logf, logf
		outs[i] = filepath.Join(dir, "out", "db.env")
	}
	begin := time.Now()
	var wg sync.WaitGroup
	for _, c := range cmds {
		wg.Add(1)
		go func() { defer wg.Done(); c.Start() }()
	}
	wg.Wait()
	defer func() {
		for _, c := range cmds {
			if c.Process != nil {
				c.Process.Signal(syscall.SIGTERM)
			}
		}
		for _, c := range cmds {
			if c.Process != nil {
				c.Wait()
			}
		}
	}()
	deadline := time.Now().Add(5 * time.Minute)
	for i := 0; i < n; {
		if _, err := os.Stat(outs[i]); err == nil {
			i++
			continue
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(outs[i])), "log"))
			return stats{}, fmt.Errorf("daemon %d rendered nothing in 5 minutes; its log:\n%s", i, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	from := time.Now()
	st := stats{daemons: n, startup: from.Sub(begin), window: time.Duration(cycles) * ttl}
	time.Sleep(st.window)
	to := from.Add(st.window)
	f, err := os.Open(audit)
	if err != nil {
		return stats{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var times []time.Time
	for sc.Scan() {
		var line struct {
			Time time.Time `json:"time"`
			Type string    `json:"type"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Type == "request" {
			times = append(times, line.Time)
		}
	}
	c := rate.Count(times, from, to)
	st.burst, st.requests, st.mean, st.peak = c.Burst, c.Requests, c.Mean, c.Peak
	return st, nil
}
