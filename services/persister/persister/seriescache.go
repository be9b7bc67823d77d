package persister

import (
	"hash/maphash"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// seriesCache remembers, for the labels a batch carries for a series, the
// label set built from them and the head's reference of the series, as
// Prometheus's scrape cache does for scraped series: a series seen before
// skips label validation, sorting and hashing, and is appended by
// reference instead of by a lookup in the head's series map. A reference to
// a series the head has dropped since is harmless: the head then looks the
// label set up as for a new series.
//
// Entries live in two generations. Lookups promote entries to the current
// one, which becomes the previous one every rotateAfter or once it holds
// maxSeries entries; the previous one is then dropped. Series that report
// at least once per rotation stay cached, and the cache holds at most
// 2×maxSeries entries.
type seriesCache struct {
	now         func() time.Time
	seed        maphash.Seed
	rotateAfter time.Duration
	maxSeries   int

	mu        sync.Mutex
	cur, prev map[uint64][]*cachedSeries
	curLen    int
	rotated   time.Time
}

// cachedSeries is one series of the cache.
type cachedSeries struct {
	tenant string
	src    []samples.Label // the batch labels, cloned: batch strings share the record's memory
	lset   labels.Labels
	hash   uint64 // of lset
	ref    atomic.Uint64
}

func newSeriesCache(now func() time.Time, rotateAfter time.Duration, maxSeries int) *seriesCache {
	return &seriesCache{
		now: now, seed: maphash.MakeSeed(), rotateAfter: rotateAfter, maxSeries: maxSeries,
		cur: map[uint64][]*cachedSeries{}, rotated: now(),
	}
}

// Defaults of the series cache: a series reporting at least every ten
// minutes stays cached.
const (
	seriesCacheRotation  = 10 * time.Minute
	seriesCacheMaxSeries = 1 << 20
)

// keyOf hashes a batch series' identity: its tenant and labels in the
// batch's order. Each string is hashed on its own, so ("ab", "c") and
// ("a", "bc") differ; equal keys are compared label by label anyway.
func (c *seriesCache) keyOf(tenant string, in []samples.Label) uint64 {
	h := maphash.String(c.seed, tenant)
	for _, l := range in {
		h = bits.RotateLeft64(h, 17) ^ maphash.String(c.seed, l.Name)
		h = bits.RotateLeft64(h, 17) ^ maphash.String(c.seed, l.Value)
	}
	return h
}

func (e *cachedSeries) is(tenant string, in []samples.Label) bool {
	return e.tenant == tenant && slices.Equal(e.src, in)
}

// lookup returns the cached series of each of in (nil where there is
// none) and the keys of in, for add.
func (c *seriesCache) lookup(tenant string, in []samples.Series) (out []*cachedSeries, keys []uint64) {
	out, keys = make([]*cachedSeries, 0, len(in)), make([]uint64, 0, len(in))
	for i := range in {
		keys = append(keys, c.keyOf(tenant, in[i].Labels))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maybeRotate()
	for i, k := range keys {
		out = append(out, c.find(k, tenant, in[i].Labels))
	}
	return out, keys
}

// find returns the series under key k, promoting it from the previous
// generation. c.mu is held.
func (c *seriesCache) find(k uint64, tenant string, in []samples.Label) *cachedSeries {
	for _, e := range c.cur[k] {
		if e.is(tenant, in) {
			return e
		}
	}
	for _, e := range c.prev[k] {
		if e.is(tenant, in) {
			c.put(k, e)
			return e
		}
	}
	return nil
}

// add caches a new series built from in and returns it. Adding a series
// that another batch added meanwhile returns that one.
func (c *seriesCache) add(k uint64, tenant string, in []samples.Label, lset labels.Labels, hash uint64) *cachedSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.find(k, tenant, in); e != nil {
		return e
	}
	src := make([]samples.Label, len(in))
	for i, l := range in {
		src[i] = samples.Label{Name: strings.Clone(l.Name), Value: strings.Clone(l.Value)}
	}
	e := &cachedSeries{tenant: strings.Clone(tenant), src: src, lset: lset, hash: hash}
	c.put(k, e)
	return e
}

// put adds e to the current generation. c.mu is held.
func (c *seriesCache) put(k uint64, e *cachedSeries) {
	c.cur[k] = append(c.cur[k], e)
	c.curLen++
}

// maybeRotate starts a new generation when the current one is old or
// full. c.mu is held.
func (c *seriesCache) maybeRotate() {
	now := c.now()
	if c.curLen < c.maxSeries && now.Sub(c.rotated) < c.rotateAfter {
		return
	}
	c.prev, c.cur = c.cur, make(map[uint64][]*cachedSeries, len(c.cur))
	c.curLen = 0
	c.rotated = now
}

// reference returns the head's reference of e's series, 0 if unknown.
func (e *cachedSeries) reference() storage.SeriesRef { return storage.SeriesRef(e.ref.Load()) }

// setReference records the reference the head returned for e's series.
func (e *cachedSeries) setReference(ref storage.SeriesRef) {
	if storage.SeriesRef(e.ref.Load()) != ref {
		e.ref.Store(uint64(ref))
	}
}
