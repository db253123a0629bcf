package providers

import (
	"container/list"
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/secrets-broker/secrets-broker/envelope"
)

// DefaultDataKeyTTL is how long an unwrapped data key is kept by default:
// five minutes, the KV re-read interval, so a KMS key that is disabled, or a
// grant that is revoked, stops opening secrets in a running daemon within
// one refresh; reloads and file re-reads in between cost no KMS call.
const DefaultDataKeyTTL = 5 * time.Minute

// DataKeyCache remembers unwrapped data keys in memory, keyed by the hash of
// the key id, the wrapped bytes and the binding, so that re-reading an
// unchanged secret costs no call to a key service. It holds at most max
// keys, each for at most ttl, evicting the least recently used; evicted and
// expired keys are zeroed (expired ones by Sweep, which RunSweeper calls on
// a timer, and on lookup). A ttl of zero or less disables it. It is safe
// for concurrent use.
type DataKeyCache struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	order *list.List
	items map[[32]byte]*list.Element
}

type cacheItem struct {
	key     [32]byte
	dataKey []byte
	expires time.Time
}

// NewDataKeyCache makes a cache of at most max keys kept for ttl.
func NewDataKeyCache(max int, ttl time.Duration) *DataKeyCache {
	return &DataKeyCache{max: max, ttl: ttl, now: time.Now, order: list.New(), items: make(map[[32]byte]*list.Element)}
}

// WithClock makes the cache read the time from now (for tests).
func (c *DataKeyCache) WithClock(now func() time.Time) *DataKeyCache {
	c.now = now
	return c
}

// Sweep zeroes and drops every expired key, and returns how many.
func (c *DataKeyCache) Sweep() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now, n := c.now(), 0
	for el := c.order.Back(); el != nil; {
		prev := el.Prev()
		if now.After(el.Value.(*cacheItem).expires) {
			c.remove(el)
			n++
		}
		el = prev
	}
	return n
}

// RunSweeper sweeps every half TTL (at least every second) until ctx ends,
// then purges the cache.
func (c *DataKeyCache) RunSweeper(ctx context.Context) {
	if c.ttl <= 0 {
		return
	}
	t := time.NewTicker(max(c.ttl/2, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.Purge()
			return
		case <-t.C:
			c.Sweep()
		}
	}
}

func cacheKey(keyID string, wrapped []byte, b envelope.Binding) [32]byte {
	h := sha256.New()
	h.Write([]byte(keyID))
	h.Write([]byte{0})
	h.Write(b.Canonical())
	h.Write(wrapped)
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (c *DataKeyCache) get(k [32]byte) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil
	}
	it := el.Value.(*cacheItem)
	if c.now().After(it.expires) {
		c.remove(el)
		return nil
	}
	c.order.MoveToFront(el)
	return append([]byte(nil), it.dataKey...)
}

func (c *DataKeyCache) put(k [32]byte, dataKey []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.remove(el)
	}
	c.items[k] = c.order.PushFront(&cacheItem{key: k, dataKey: append([]byte(nil), dataKey...), expires: c.now().Add(c.ttl)})
	for c.order.Len() > c.max {
		c.remove(c.order.Back())
	}
}

func (c *DataKeyCache) remove(el *list.Element) {
	it := c.order.Remove(el).(*cacheItem)
	clear(it.dataKey)
	delete(c.items, it.key)
}

// Len is the number of keys held.
func (c *DataKeyCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// Purge zeroes and drops every key.
func (c *DataKeyCache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.order.Len() > 0 {
		c.remove(c.order.Back())
	}
}

// Wrap returns w with unwrapping served from the cache. The result implements
// envelope.DataKeyGenerator exactly when w does.
func (c *DataKeyCache) Wrap(w envelope.KeyWrapper) envelope.KeyWrapper {
	if c.ttl <= 0 {
		return w
	}
	cw := &cachedWrapper{KeyWrapper: w, cache: c}
	if g, ok := w.(envelope.DataKeyGenerator); ok {
		return &cachedGenerator{cachedWrapper: cw, gen: g}
	}
	return cw
}

type cachedWrapper struct {
	envelope.KeyWrapper
	cache *DataKeyCache
}

func (w *cachedWrapper) UnwrapKey(ctx context.Context, wrapped []byte, b envelope.Binding) ([]byte, error) {
	k := cacheKey(w.KeyID(), wrapped, b)
	if dk := w.cache.get(k); dk != nil {
		return dk, nil
	}
	dk, err := w.KeyWrapper.UnwrapKey(ctx, wrapped, b)
	if err != nil {
		return nil, err
	}
	w.cache.put(k, dk)
	return dk, nil
}

type cachedGenerator struct {
	*cachedWrapper
	gen envelope.DataKeyGenerator
}

func (g *cachedGenerator) GenerateDataKey(ctx context.Context, b envelope.Binding) ([]byte, []byte, error) {
	return g.gen.GenerateDataKey(ctx, b)
}
