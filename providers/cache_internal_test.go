package providers

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// Expired data keys are zeroed by the sweep, not only dropped.
func TestSweepZeroesExpiredKeys(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := NewDataKeyCache(10, time.Minute).WithClock(func() time.Time { return now })
	c.put([32]byte{1}, bytes.Repeat([]byte{0xAA}, 32))
	c.put([32]byte{2}, bytes.Repeat([]byte{0xBB}, 32))
	held := c.items[[32]byte{1}].Value.(*cacheItem).dataKey
	now = now.Add(30 * time.Second)
	c.put([32]byte{3}, bytes.Repeat([]byte{0xCC}, 32))
	if n := c.Sweep(); n != 0 {
		t.Fatalf("swept %d keys before they expired", n)
	}
	now = now.Add(31 * time.Second)
	if n := c.Sweep(); n != 2 || c.Len() != 1 {
		t.Fatalf("swept %d, %d left; want 2 and 1", n, c.Len())
	}
	if !bytes.Equal(held, make([]byte, 32)) {
		t.Fatal("an expired data key was dropped without being zeroed")
	}
	// RunSweeper purges when its context ends.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.RunSweeper(ctx); close(done) }()
	cancel()
	<-done
	if c.Len() != 0 {
		t.Fatal("stopping the sweeper left keys")
	}
}
