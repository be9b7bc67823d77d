package ruler

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// The newest sample of every series, so that a rule's instant selector
// evaluated at or after it reads one value instead of decoding the head
// chunks of the whole lookback: PromQL's instant selector seeks to
// t-lookback and steps through every sample up to t, which for a fleet-wide
// rule on 1 Hz data is ~300 decoded samples per series per evaluation, the
// bulk of an event-driven evaluation's cost.
//
// The result is the same by construction: an instant selector evaluated at
// a single time T only uses the newest sample at or before T, and where the
// cached newest sample of a series is after T (an offset, a past
// evaluation during restore) the series is read from the head as before.

const latestShards = 16

type latestEntry struct {
	lset labels.Labels
	t    int64
	v    float64
	// collided marks a hash that two series share: none of them is
	// served from here (t is then the newest of both, for truncation).
	collided bool
}

// latestCache maps a series' labels hash to its newest committed float
// sample. Safe for concurrent use.
type latestCache struct {
	// served and read counts the series of instant selectors given their
	// newest sample from here, and those read from the head.
	served, read atomic.Int64
	shards       [latestShards]struct {
		mu sync.RWMutex
		m  map[uint64]latestEntry
	}
}

func newLatestCache() *latestCache {
	c := &latestCache{}
	for i := range c.shards {
		c.shards[i].m = map[uint64]latestEntry{}
	}
	return c
}

// set records (t, v) as the newest sample of l unless a newer one is
// recorded already (commits of one series may finish out of order).
func (c *latestCache) set(l labels.Labels, t int64, v float64) {
	h := l.Hash()
	sh := &c.shards[h%latestShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[h]
	switch {
	case !ok:
		sh.m[h] = latestEntry{lset: l, t: t, v: v}
	case e.collided || !labels.Equal(e.lset, l):
		sh.m[h] = latestEntry{t: max(t, e.t), collided: true}
	case t >= e.t:
		sh.m[h] = latestEntry{lset: e.lset, t: t, v: v}
	}
}

// forget drops what is known of l: its newest sample is no longer a
// float this cache saw (a histogram was appended).
func (c *latestCache) forget(l labels.Labels) {
	h := l.Hash()
	sh := &c.shards[h%latestShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[h]; ok {
		sh.m[h] = latestEntry{t: e.t, collided: true}
	}
}

func (c *latestCache) get(l labels.Labels) (t int64, v float64, ok bool) {
	h := l.Hash()
	sh := &c.shards[h%latestShards]
	sh.mu.RLock()
	e, found := sh.m[h]
	sh.mu.RUnlock()
	if !found || e.collided || !labels.Equal(e.lset, l) {
		return 0, 0, false
	}
	return e.t, e.v, true
}

// truncate drops the series whose newest sample is before mint: the head
// holds nothing of them any more.
func (c *latestCache) truncate(mint int64) {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		for h, e := range sh.m {
			if e.t < mint {
				delete(sh.m, h)
			}
		}
		sh.mu.Unlock()
	}
}

func (c *latestCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// latestPending is what an appender has appended, recorded in the cache
// on commit.
type latestPending struct {
	cache   *latestCache
	entries []latestEntry
	refs    []storage.SeriesRef
	forgets []labels.Labels
}

// appended notes a float sample appended to the series of ref.
func (p *latestPending) appended(ref storage.SeriesRef, l labels.Labels, t int64, v float64) {
	// Consecutive samples of one series keep one entry.
	if n := len(p.entries); n > 0 && ref != 0 && p.refs[n-1] == ref {
		p.entries[n-1].t, p.entries[n-1].v = t, v
		return
	}
	p.entries = append(p.entries, latestEntry{lset: l, t: t, v: v})
	p.refs = append(p.refs, ref)
}

// unknown notes an append whose newest sample the cache does not model
// (a histogram, a start timestamp, a partial failure).
func (p *latestPending) unknown(l labels.Labels) {
	p.forgets = append(p.forgets, l)
}

func (p *latestPending) committed() {
	for _, e := range p.entries {
		p.cache.set(e.lset, e.t, e.v)
	}
	for _, l := range p.forgets {
		p.cache.forget(l)
	}
}

// latestAppender records in the cache, on commit, the newest sample of
// each series it appended.
type latestAppender struct {
	storage.Appender
	latestPending
}

func (a *latestAppender) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	r, err := a.Appender.Append(ref, l, t, v)
	if err == nil {
		a.appended(r, l, t, v)
	}
	return r, err
}

func (a *latestAppender) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	r, err := a.Appender.AppendHistogram(ref, l, t, h, fh)
	a.unknown(l)
	return r, err
}

func (a *latestAppender) AppendSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	r, err := a.Appender.AppendSTZeroSample(ref, l, t, st)
	a.unknown(l)
	return r, err
}

func (a *latestAppender) AppendHistogramSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	r, err := a.Appender.AppendHistogramSTZeroSample(ref, l, t, st, h, fh)
	a.unknown(l)
	return r, err
}

func (a *latestAppender) Commit() error {
	if err := a.Appender.Commit(); err != nil {
		return err
	}
	a.committed()
	return nil
}

// latestAppenderV2 is latestAppender for the AppenderV2 interface.
type latestAppenderV2 struct {
	storage.AppenderV2
	latestPending
}

func (a *latestAppenderV2) Append(ref storage.SeriesRef, l labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	r, err := a.AppenderV2.Append(ref, l, st, t, v, h, fh, opts)
	switch {
	case err == nil && st == 0 && h == nil && fh == nil:
		a.appended(r, l, t, v)
	default:
		a.unknown(l)
	}
	return r, err
}

func (a *latestAppenderV2) Commit() error {
	if err := a.AppenderV2.Commit(); err != nil {
		return err
	}
	a.committed()
	return nil
}

// latestQueryable serves instant selectors from the cache where it can.
type latestQueryable struct {
	storage.Queryable
	cache *latestCache
	// lookback is the engine's lookback delta in ms.
	lookback int64
}

func (q latestQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return latestQuerier{Querier: inner, cache: q.cache, lookback: q.lookback}, nil
}

type latestQuerier struct {
	storage.Querier
	cache    *latestCache
	lookback int64
}

func (q latestQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	set := q.Querier.Select(ctx, sortSeries, hints, ms...)
	// Only a selector evaluated at one time, End: an instant query's
	// instant selector spans the lookback before it, less the excluded
	// boundary millisecond; a range selector has a range, a range query or
	// a subquery a step, and a smoothed selector reaches past End.
	if hints == nil || hints.Range != 0 || hints.Step != 0 || hints.End-hints.Start != q.lookback-1 {
		return set
	}
	return &latestSeriesSet{SeriesSet: set, cache: q.cache, at: hints.End}
}

// latestSeriesSet replaces the samples of a series by its newest one when
// that is at or before the evaluation time.
type latestSeriesSet struct {
	storage.SeriesSet
	cache *latestCache
	at    int64
}

func (s *latestSeriesSet) At() storage.Series {
	ser := s.SeriesSet.At()
	l := ser.Labels()
	t, v, ok := s.cache.get(l)
	if !ok || t > s.at {
		s.cache.read.Add(1)
		return ser
	}
	s.cache.served.Add(1)
	return latestSeries{lset: l, t: t, v: v}
}

type latestSeries struct {
	lset labels.Labels
	t    int64
	v    float64
}

func (s latestSeries) Labels() labels.Labels { return s.lset }

func (s latestSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return storage.NewListSeriesIterator(oneSample{t: s.t, v: s.v})
}

// oneSample is a list of one float sample, and that sample.
type oneSample struct {
	t int64
	v float64
}

func (s oneSample) Get(int) chunks.Sample         { return s }
func (s oneSample) Len() int                      { return 1 }
func (s oneSample) T() int64                      { return s.t }
func (s oneSample) ST() int64                     { return 0 }
func (s oneSample) F() float64                    { return s.v }
func (s oneSample) H() *histogram.Histogram       { return nil }
func (s oneSample) FH() *histogram.FloatHistogram { return nil }
func (s oneSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s oneSample) Copy() chunks.Sample           { return s }
