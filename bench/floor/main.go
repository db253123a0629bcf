// Command floor is the memory floor of bench/floor.sh: the least any
// implementation of secrets-broker must link and run to render N KV v2
// secrets from Vault into one file. It does bench/minimal's job (N reads,
// 8 in flight, one file) but links what the product must: a cobra command
// parses the flags, the Vault client can log in with AppRole or Kubernetes,
// an AWS KMS client with the standard credential chain can Decrypt, fsnotify
// can watch, and the output is rendered by text/template (Vault Agent and
// consul-template templates need its semantics). The branches that log in,
// call KMS or watch are chosen by -mode, so the linker keeps them; the bench
// runs -mode token. It has no config, checks, envelopes, atomic writes or
// logging: whatever the broker holds above this floor is the cost of those.
//
// Build tags take one part out, to show what it costs:
// floor_noaws (no AWS SDK) and floor_notemplate (fmt instead of
// text/template).
//
//	floor --addr URL --token-file F --prefix secret/data/bench/s --n 100 --out FILE
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
	"github.com/spf13/cobra"
)

func main() {
	var f flags
	root := &cobra.Command{
		Use:  "floor",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), f) },
	}
	root.Flags().StringVar(&f.addr, "addr", "", "Vault address")
	root.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding a Vault token (or the login's secret)")
	root.Flags().StringVar(&f.prefix, "prefix", "secret/data/bench/s", "path prefix; paths are PREFIX0 .. PREFIX(N-1)")
	root.Flags().StringVar(&f.out, "out", "", "file to write")
	root.Flags().StringVar(&f.mode, "mode", "token", "token, approle, kubernetes, kms or watch")
	root.Flags().IntVar(&f.n, "n", 100, "number of secrets")
	if err := root.ExecuteContext(context.Background()); err != nil {
		log.Fatal(err)
	}
}

type flags struct {
	addr, tokenFile, prefix, out, mode string
	n                                  int
}

func run(ctx context.Context, f flags) error {
	cfg := api.DefaultConfig()
	cfg.Address = f.addr
	c, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	switch f.mode {
	case "approle":
		a, err := approle.NewAppRoleAuth("role-id", &approle.SecretID{FromFile: f.tokenFile})
		if err != nil {
			return err
		}
		_, err = c.Auth().Login(ctx, a)
		return err
	case "kubernetes":
		a, err := kubernetes.NewKubernetesAuth("role", kubernetes.WithServiceAccountTokenPath(f.tokenFile))
		if err != nil {
			return err
		}
		_, err = c.Auth().Login(ctx, a)
		return err
	case "kms":
		return decryptWithKMS(ctx, []byte(f.addr))
	case "watch":
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return err
		}
		defer w.Close()
		if err := w.Add(f.out); err != nil {
			return err
		}
		<-w.Events
		return nil
	}
	token, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return err
	}
	c.SetToken(strings.TrimSpace(string(token)))
	paths := make([]string, f.n)
	for i := range paths {
		paths[i] = fmt.Sprintf("%s%d", f.prefix, i)
	}
	secrets := make(map[string]*api.Secret, f.n)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	jobs := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				s, err := c.Logical().ReadWithContext(ctx, p)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				secrets[p] = s
				mu.Unlock()
			}
		}()
	}
	for _, p := range paths {
		jobs <- p
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	out, err := render(paths, secrets)
	if err != nil {
		return err
	}
	return os.WriteFile(f.out, out, 0o600)
}
