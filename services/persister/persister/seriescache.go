package persister

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// seriesCache remembers, for the labels of a batch series as the record
// encodes them (samples.Decoder.EncodedLabels), the label set built from
// them and the head's reference of the series, as Prometheus's scrape
// cache does for scraped series: a series seen before skips label
// validation, sorting and hashing, and is appended by reference instead of
// by a lookup in the head's series map. One hash and one comparison of the
// encoding find it, on memory that the record just brought into the CPU's
// cache. A reference to a series the head has dropped since is harmless:
// the head then looks the label set up as for a new series.
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

	hits, misses prometheus.Counter

	mu        sync.Mutex
	cur, prev map[uint64]*cachedSeries
	rotated   time.Time
}

// cachedSeries is one series of the cache.
type cachedSeries struct {
	tenant string
	labels string // encoded, cloned: the record's copy would stay alive
	lset   labels.Labels
	hash   uint64 // of lset
	ref    atomic.Uint64
}

// newSeriesCache returns an empty cache whose metrics reg registers (nil:
// none).
func newSeriesCache(now func() time.Time, rotateAfter time.Duration, maxSeries int, reg prometheus.Registerer) *seriesCache {
	c := &seriesCache{
		now: now, seed: maphash.MakeSeed(), rotateAfter: rotateAfter, maxSeries: maxSeries,
		cur: map[uint64]*cachedSeries{}, rotated: now(),
	}
	f := promauto.With(reg)
	lookups := f.NewCounterVec(prometheus.CounterOpts{
		Name: "tmaflow_persister_series_cache_lookups_total",
		Help: "Series of topic-metrics batches looked up in the series cache, by result: hit (appended by reference) or miss (labels built and looked up in the TSDB head).",
	}, []string{"result"})
	c.hits, c.misses = lookups.WithLabelValues("hit"), lookups.WithLabelValues("miss")
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tmaflow_persister_series_cache_series",
		Help: "Series in the series cache, both generations (a series promoted to the current one counted twice).",
	}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(len(c.cur) + len(c.prev))
	})
	return c
}

// Defaults of the series cache: a series reporting at least every ten
// minutes stays cached.
const (
	seriesCacheRotation  = 10 * time.Minute
	seriesCacheMaxSeries = 1 << 20
)

// lookup returns the cached series of each encoding in encoded (nil where
// there is none) and the keys of encoded, for add.
func (c *seriesCache) lookup(tenant string, encoded []string) (found []*cachedSeries, keys []uint64) {
	found, keys = make([]*cachedSeries, len(encoded)), make([]uint64, len(encoded))
	th := maphash.String(c.seed, tenant)
	for i, e := range encoded {
		keys[i] = th ^ maphash.String(c.seed, e)
	}
	hits := 0
	c.mu.Lock()
	c.maybeRotate()
	for i, k := range keys {
		if found[i] = c.find(k, tenant, encoded[i]); found[i] != nil {
			hits++
		}
	}
	c.mu.Unlock()
	c.hits.Add(float64(hits))
	c.misses.Add(float64(len(keys) - hits))
	return found, keys
}

// find returns the series under key k, promoting it from the previous
// generation. c.mu is held.
func (c *seriesCache) find(k uint64, tenant, encoded string) *cachedSeries {
	if e := c.cur[k]; e != nil {
		if e.labels == encoded && e.tenant == tenant {
			return e
		}
		return nil
	}
	if e := c.prev[k]; e != nil && e.labels == encoded && e.tenant == tenant {
		c.cur[k] = e
		return e
	}
	return nil
}

// add caches a new series built from labels encoded as encoded and
// returns it, or the one another batch added meanwhile. It returns nil
// when the key holds another series (a hash collision, which leaves that
// series uncached).
func (c *seriesCache) add(k uint64, tenant, encoded string, lset labels.Labels, hash uint64) *cachedSeries {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.find(k, tenant, encoded); e != nil {
		return e
	}
	if c.cur[k] != nil {
		return nil
	}
	e := &cachedSeries{tenant: strings.Clone(tenant), labels: strings.Clone(encoded), lset: lset, hash: hash}
	c.cur[k] = e
	return e
}

// maybeRotate starts a new generation when the current one is old or
// full. c.mu is held.
func (c *seriesCache) maybeRotate() {
	now := c.now()
	if len(c.cur) < c.maxSeries && now.Sub(c.rotated) < c.rotateAfter {
		return
	}
	c.prev, c.cur = c.cur, make(map[uint64]*cachedSeries, len(c.cur))
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
