// Command kms measures how the broker opens a KMS-sealed secrets file: N
// entries (default 100) sealed under a key of the in-process KMS test double
// (AWS KMS is not reachable here) that answers every request after a fixed
// latency (default 10 ms). It times, in the same run and alternating,
//
//   - serial: this program opening the entries one by one with the same
//     envelope and awskms code (the broker before it opened them
//     concurrently), and
//   - broker: the whole "secrets-broker run --once" process,
//
// and prints medians and the ratio broker/serial (issue 9's target: <= 1/4).
//
//	go run ./bench/kms -broker bin/secrets-broker [-n 100] [-latency 10ms] [-runs 3]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/kmsfake"
	"github.com/secrets-broker/secrets-broker/providers/awskms"
)

func main() {
	broker := flag.String("broker", "", "secrets-broker binary")
	n := flag.Int("n", 100, "entries")
	latency := flag.Duration("latency", 10*time.Millisecond, "KMS latency per request")
	runs := flag.Int("runs", 3, "runs of each")
	flag.Parse()
	if *broker == "" {
		log.Fatal("kms: -broker is required")
	}
	srv := kmsfake.Start()
	defer srv.Close()
	arn := srv.CreateKey("us-east-1")
	work, err := os.MkdirTemp("", "kms-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	env := []string{"HOME=" + work, "PATH=" + os.Getenv("PATH"), "AWS_ENDPOINT_URL_KMS=" + srv.URL, "AWS_ACCESS_KEY_ID=AKIDTEST",
		"AWS_SECRET_ACCESS_KEY=test-secret", "AWS_CONFIG_FILE=" + filepath.Join(work, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(work, "none")}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	var plain, secrets strings.Builder
	for i := range *n {
		fmt.Fprintf(&plain, "s%05d: value-%05d\n", i, i)
		fmt.Fprintf(&secrets, "  s%05d: envelope:s.enc.yaml#s%05d\n", i, i)
	}
	os.WriteFile(filepath.Join(work, "plain.yaml"), []byte(plain.String()), 0o600)
	run := func(args ...string) {
		cmd := exec.Command(*broker, args...)
		cmd.Dir, cmd.Env = work, env
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Run(); err != nil {
			log.Fatalf("kms: secrets-broker %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
	}
	run("encrypt", "--key", "awskms:"+arn, "--file", "plain.yaml", "--out", "s.enc.yaml")
	os.WriteFile(filepath.Join(work, "broker.yaml"), []byte("keys: [\"awskms:"+arn+"\"]\nkey_cache: {ttl: 0s}\noutput_root: out\nsecrets:\n"+secrets.String()+"outputs:\n  - path: all.json\n    format: json\n"), 0o600)

	ctx := context.Background()
	key, err := awskms.New(ctx, arn)
	if err != nil {
		log.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(work, "s.enc.yaml"))
	if err != nil {
		log.Fatal(err)
	}
	serial := func() {
		f, err := envelope.ParseFile(data, "s.enc.yaml")
		if err != nil {
			log.Fatal(err)
		}
		keys := []envelope.KeyWrapper{key}
		if err := f.Verify(ctx, envelope.FileExpect{}, keys); err != nil {
			log.Fatal(err)
		}
		for _, e := range f.Entries {
			if _, err := f.Open(ctx, envelope.Expect{Name: e.Name}, envelope.FileExpect{}, keys); err != nil {
				log.Fatal(err)
			}
		}
	}
	srv.SetLatency(*latency)
	var tSerial, tBroker []time.Duration
	for range *runs {
		start := time.Now()
		serial()
		tSerial = append(tSerial, time.Since(start))
		start = time.Now()
		run("run", "--once", "-c", "broker.yaml")
		tBroker = append(tBroker, time.Since(start))
	}
	s, b := median(tSerial), median(tBroker)
	fmt.Printf("%d KMS entries at %s latency, median of %d: serial %.3f s, broker run --once %.3f s (whole process), broker/serial %.2f (target <= 0.25); at most %d Decrypt calls in flight\n",
		*n, *latency, *runs, s.Seconds(), b.Seconds(), b.Seconds()/s.Seconds(), srv.MaxInFlight())
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}
