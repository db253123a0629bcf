package providers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/providers"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

type counting struct {
	envelope.KeyWrapper
	unwraps int
}

func (c *counting) UnwrapKey(ctx context.Context, w []byte, b envelope.Binding) ([]byte, error) {
	c.unwraps++
	return c.KeyWrapper.UnwrapKey(ctx, w, b)
}

func TestDataKeyCacheBoundAndTTL(t *testing.T) {
	ctx := context.Background()
	inner := &counting{KeyWrapper: local.Generate()}
	cache := providers.NewDataKeyCache(2, 50*time.Millisecond)
	k := cache.Wrap(inner)
	if _, ok := k.(envelope.DataKeyGenerator); ok {
		t.Fatal("cache added GenerateDataKey to a wrapper without it")
	}
	var wrapped [][]byte
	for i := range 3 {
		w, _ := k.WrapKey(ctx, make([]byte, 32), envelope.Binding{Name: fmt.Sprint("n", i)})
		wrapped = append(wrapped, w)
	}
	open := func(i int) {
		t.Helper()
		if _, err := k.UnwrapKey(ctx, wrapped[i], envelope.Binding{Name: fmt.Sprint("n", i)}); err != nil {
			t.Fatal(err)
		}
	}
	open(0)
	open(0)
	if inner.unwraps != 1 {
		t.Fatalf("second unwrap not cached: %d calls", inner.unwraps)
	}
	open(1)
	open(2) // evicts 0
	if cache.Len() != 2 {
		t.Fatalf("cache holds %d, bound is 2", cache.Len())
	}
	open(0)
	if inner.unwraps != 4 {
		t.Fatalf("evicted key served from cache: %d calls", inner.unwraps)
	}
	// A different binding never hits another binding's entry.
	if _, err := k.UnwrapKey(ctx, wrapped[0], envelope.Binding{Name: "other"}); err == nil {
		t.Fatal("cache served a key for another binding")
	}
	time.Sleep(60 * time.Millisecond)
	open(0)
	if inner.unwraps != 6 {
		t.Fatalf("expired key served from cache: %d calls", inner.unwraps)
	}
	cache.Purge()
	if cache.Len() != 0 {
		t.Fatal("purge left keys")
	}
}
