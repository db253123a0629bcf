// Command minimal is the baseline of bench/linear.sh: the least a program
// can do to render N KV v2 secrets from Vault with vault/api: read every
// path (8 requests in flight), put each password into one file, write it.
// It has no config, templates, checks or atomic writes; the broker's cost
// above it is what those take.
//
//	minimal -addr URL -token-file F -prefix secret/data/bench/s -n 1000 -out FILE
//	minimal ... -files -out DIR     (one file per secret)
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"
)

func main() {
	addr := flag.String("addr", "", "Vault address")
	tokenFile := flag.String("token-file", "", "file holding a Vault token")
	prefix := flag.String("prefix", "secret/data/bench/s", "path prefix; paths are PREFIX0 .. PREFIX(N-1)")
	n := flag.Int("n", 1000, "number of secrets")
	out := flag.String("out", "", "file to write (with -files: a directory)")
	files := flag.Bool("files", false, "write each secret to its own file in -out, as N outputs do")
	flag.Parse()
	token, err := os.ReadFile(*tokenFile)
	if err != nil {
		log.Fatal(err)
	}
	cfg := api.DefaultConfig()
	cfg.Address = *addr
	c, err := api.NewClient(cfg)
	if err != nil {
		log.Fatal(err)
	}
	c.SetToken(strings.TrimSpace(string(token)))
	values := make([]string, *n)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				s, err := c.Logical().Read(fmt.Sprintf("%s%d", *prefix, i))
				if err != nil || s == nil {
					log.Fatalf("read %d: %v", i, err)
				}
				values[i], _ = s.Data["data"].(map[string]any)["password"].(string)
			}
		}()
	}
	for i := range *n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if *files {
		for i, v := range values {
			if err := os.WriteFile(fmt.Sprintf("%s/o%d.env", *out, i), []byte(fmt.Sprintf("s%d=%q\n", i, v)), 0o600); err != nil {
				log.Fatal(err)
			}
		}
		return
	}
	var b strings.Builder
	for i, v := range values {
		fmt.Fprintf(&b, "s%d=%s\n", i, v)
	}
	if err := os.WriteFile(*out, []byte(b.String()), 0o600); err != nil {
		log.Fatal(err)
	}
}
