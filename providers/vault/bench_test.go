package vault_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/secrets-broker/secrets-broker/internal/vaulttest"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// BenchmarkFetch100KV fetches 100 KV v2 secrets (one field each) from a real
// Vault dev server: "cold" includes connecting and the token lookup (auth),
// "warm" reuses the client. requests/op is the number of HTTP requests made:
// 1 per distinct path, plus 1 for auth when cold.
func BenchmarkFetch100KV(b *testing.B) {
	v := vaulttest.Start(b)
	root := v.Client(b)
	var refs []vault.Ref
	for i := range 100 {
		if _, err := root.Logical().Write(fmt.Sprintf("secret/data/bench/s%03d", i), map[string]any{"data": map[string]any{"value": fmt.Sprint("v", i)}}); err != nil {
			b.Fatal(err)
		}
		r, _ := vault.ParseRef(fmt.Sprintf("secret/data/bench/s%03d#value", i))
		refs = append(refs, r)
	}
	b.Setenv("VAULT_TOKEN", v.Token)
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		var reqs int64
		for b.Loop() {
			c, err := vault.Connect(ctx, vault.Config{Address: v.Addr})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.ReadMany(ctx, refs, 16); err != nil {
				b.Fatal(err)
			}
			reqs += c.Requests()
			c.Close()
		}
		b.ReportMetric(float64(reqs)/float64(b.N), "requests/op")
	})
	b.Run("warm", func(b *testing.B) {
		c, err := vault.Connect(ctx, vault.Config{Address: v.Addr})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		before := c.Requests()
		for b.Loop() {
			if _, err := c.ReadMany(ctx, refs, 16); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(c.Requests()-before)/float64(b.N), "requests/op")
	})
}
