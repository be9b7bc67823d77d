package ruler

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
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
// newest sample of a selected series is after T (an offset, a past
// evaluation during restore) or not known here, the whole selector is read
// from the head as before.

// latestPoint is a float sample.
type latestPoint struct {
	t int64
	v float64
}

// latestSlot is what is known of one series' newest sample.
type latestSlot struct {
	p atomic.Pointer[latestPoint]
	// unknown marks a series whose newest sample may be one this cache
	// does not model (a histogram): it is always read from the head.
	unknown atomic.Bool
}

// latestCache maps a head series reference to its newest committed float
// sample. Readers look up a whole selector's series under one read lock;
// writers update existing slots under the read lock too (atomically) and
// take the write lock only to add series.
type latestCache struct {
	// served and read count the series of instant selectors given their
	// newest sample from here, and those read from the head.
	served, read atomic.Int64
	// scratch holds the *newestScratch of withNewest.
	scratch sync.Pool

	mu    sync.RWMutex
	slots map[storage.SeriesRef]*latestSlot
}

func newLatestCache() *latestCache {
	return &latestCache{slots: map[storage.SeriesRef]*latestSlot{}}
}

// commit records what an appender committed: the newest sample of each
// series in entries (unless a newer one is recorded already: commits of
// one series may finish out of order), and the series in unknown as not
// served from here. Known series are updated under the read lock; the
// write lock is taken only to add series or mark them unknown.
func (c *latestCache) commit(entries []latestEntry, unknown []storage.SeriesRef) {
	var added []latestEntry
	c.mu.RLock()
	for _, e := range entries {
		if sl := c.slots[e.ref]; sl != nil {
			sl.advance(e.t, e.v)
		} else {
			added = append(added, e)
		}
	}
	c.mu.RUnlock()
	if len(added) == 0 && len(unknown) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range added {
		c.slot(e.ref).advance(e.t, e.v)
	}
	for _, ref := range unknown {
		c.slot(ref).unknown.Store(true)
	}
}

// slot is the slot of ref, added if missing. Under the write lock.
func (c *latestCache) slot(ref storage.SeriesRef) *latestSlot {
	sl := c.slots[ref]
	if sl == nil {
		sl = &latestSlot{}
		c.slots[ref] = sl
	}
	return sl
}

func (sl *latestSlot) advance(t int64, v float64) {
	next := &latestPoint{t: t, v: v}
	for {
		old := sl.p.Load()
		if (old != nil && old.t > t) || sl.p.CompareAndSwap(old, next) {
			return
		}
	}
}

// lookup fills pts with the newest samples of refs; false if one of them
// is not known or is after end.
func (c *latestCache) lookup(refs []storage.SeriesRef, end int64, pts []latestPoint) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, ref := range refs {
		sl := c.slots[ref]
		if sl == nil || sl.unknown.Load() {
			return false
		}
		p := sl.p.Load()
		if p == nil || p.t > end {
			return false
		}
		pts[i] = *p
	}
	return true
}

// truncate drops the series whose newest sample is before mint: the head
// holds nothing of them any more.
func (c *latestCache) truncate(mint int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ref, sl := range c.slots {
		if p := sl.p.Load(); p == nil || p.t < mint {
			delete(c.slots, ref)
		}
	}
}

// latestPending is what an appender has appended, recorded in the cache
// on commit.
type latestPending struct {
	cache   *latestCache
	entries []latestEntry
	unknown []storage.SeriesRef
}

type latestEntry struct {
	ref storage.SeriesRef
	t   int64
	v   float64
}

// appended notes a float sample appended to the series of ref.
func (p *latestPending) appended(ref storage.SeriesRef, t int64, v float64) {
	// Consecutive samples of one series keep one entry.
	if n := len(p.entries); n > 0 && p.entries[n-1].ref == ref {
		p.entries[n-1].t, p.entries[n-1].v = t, v
		return
	}
	p.entries = append(p.entries, latestEntry{ref: ref, t: t, v: v})
}

// unknown notes an append whose newest sample the cache does not model
// (a histogram, a start timestamp, a partial failure).
func (p *latestPending) notModelled(ref storage.SeriesRef) {
	if ref != 0 {
		p.unknown = append(p.unknown, ref)
	}
}

// commitWith commits the appender with commit and, if that succeeds,
// records what it appended.
func (p *latestPending) commitWith(commit func() error) error {
	if err := commit(); err != nil {
		return err
	}
	p.cache.commit(p.entries, p.unknown)
	return nil
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
		a.appended(r, t, v)
	}
	return r, err
}

func (a *latestAppender) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	r, err := a.Appender.AppendHistogram(ref, l, t, h, fh)
	a.notModelled(r)
	return r, err
}

func (a *latestAppender) AppendSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	r, err := a.Appender.AppendSTZeroSample(ref, l, t, st)
	a.notModelled(r)
	return r, err
}

func (a *latestAppender) AppendHistogramSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	r, err := a.Appender.AppendHistogramSTZeroSample(ref, l, t, st, h, fh)
	a.notModelled(r)
	return r, err
}

func (a *latestAppender) Commit() error { return a.commitWith(a.Appender.Commit) }

// latestAppenderV2 is latestAppender for the AppenderV2 interface.
type latestAppenderV2 struct {
	storage.AppenderV2
	latestPending
}

func (a *latestAppenderV2) Append(ref storage.SeriesRef, l labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	r, err := a.AppenderV2.Append(ref, l, st, t, v, h, fh, opts)
	switch {
	case err == nil && st == 0 && h == nil && fh == nil:
		a.appended(r, t, v)
	default:
		a.notModelled(r)
	}
	return r, err
}

func (a *latestAppenderV2) Commit() error { return a.commitWith(a.AppenderV2.Commit) }

// latestQueryable serves instant selectors from the cache where it can.
type latestQueryable struct {
	head  *tsdb.Head
	inner storage.Queryable // the head as a block
	cache *latestCache
	// lookback is the engine's lookback delta in ms.
	lookback int64
}

func (q latestQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.inner.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return latestQuerier{Querier: inner, q: q}, nil
}

type latestQuerier struct {
	storage.Querier
	q latestQueryable
}

// Select answers an instant selector evaluated at one time from the
// newest samples when every series it selects has its newest sample at or
// before that time; otherwise, and for every other selector, from the
// head.
func (q latestQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	// One evaluation time, End: an instant query's instant selector spans
	// the lookback before it, less the excluded boundary millisecond; a
	// range selector has a range, a range query or a subquery a step, and
	// a smoothed selector reaches past End.
	if hints == nil || hints.Range != 0 || hints.Step != 0 || hints.Limit != 0 || hints.End-hints.Start != q.q.lookback-1 {
		return q.Querier.Select(ctx, sortSeries, hints, ms...)
	}
	if set, ok := q.selectLatest(ctx, sortSeries, hints, ms); ok {
		return set
	}
	return q.Querier.Select(ctx, sortSeries, hints, ms...)
}

func (q latestQuerier) selectLatest(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms []*labels.Matcher) (storage.SeriesSet, bool) {
	var set *latestSeriesSet
	n, served := q.q.withNewest(ctx, ms, sortSeries, hints.End, func(ix tsdb.IndexReader, refs []storage.SeriesRef, pts []latestPoint) bool {
		set = &latestSeriesSet{series: make([]latestSeries, 0, len(refs))}
		var builder labels.ScratchBuilder
		for i, ref := range refs {
			pt := pts[i]
			if pt.t < hints.Start {
				continue // nothing in the lookback: the head's querier leaves it out too
			}
			if err := ix.Series(ref, &builder, nil); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue // removed by a truncation meanwhile
				}
				return false
			}
			set.series = append(set.series, latestSeries{lset: builder.Labels(), smp: oneSample{t: pt.t, v: pt.v}})
		}
		return true
	})
	if !served {
		q.q.cache.read.Add(int64(n))
		return nil, false
	}
	q.q.cache.served.Add(int64(n))
	return set, true
}

// withNewest calls f with the head index, the n series ms select (in
// label order if sorted) and their newest samples, and reports whether f
// succeeded. It does not call f if one of the series' newest sample is not
// known here or is after end, or the index fails. The series and samples
// are scratch space, reused once f returns.
func (q latestQueryable) withNewest(ctx context.Context, ms []*labels.Matcher, sorted bool, end int64, f func(ix tsdb.IndexReader, refs []storage.SeriesRef, pts []latestPoint) bool) (n int, ok bool) {
	ix, err := q.head.Index()
	if err != nil {
		return 0, false
	}
	defer ix.Close()
	p, err := tsdb.PostingsForMatchers(ctx, ix, ms...)
	if err != nil {
		return 0, false
	}
	if sorted {
		p = ix.SortedPostings(p)
	}
	// Rules evaluate hundreds of times a second: the scratch space is
	// reused.
	sc, _ := q.cache.scratch.Get().(*newestScratch)
	if sc == nil {
		sc = &newestScratch{}
	}
	defer q.cache.scratch.Put(sc)
	sc.refs = sc.refs[:0]
	for p.Next() {
		sc.refs = append(sc.refs, p.At())
	}
	if p.Err() != nil {
		return 0, false
	}
	n = len(sc.refs)
	sc.pts = slices.Grow(sc.pts[:0], n)[:n]
	if !q.cache.lookup(sc.refs, end, sc.pts) {
		return n, false
	}
	return n, f(ix, sc.refs, sc.pts)
}

// newestScratch is the series references and newest samples of one
// withNewest.
type newestScratch struct {
	refs []storage.SeriesRef
	pts  []latestPoint
}

// latestSeriesSet is a list of series of one sample each.
type latestSeriesSet struct {
	series []latestSeries
	i      int
}

func (s *latestSeriesSet) Next() bool {
	if s.i >= len(s.series) {
		return false
	}
	s.i++
	return true
}

func (s *latestSeriesSet) At() storage.Series                { return &s.series[s.i-1] }
func (s *latestSeriesSet) Err() error                        { return nil }
func (s *latestSeriesSet) Warnings() annotations.Annotations { return nil }

type latestSeries struct {
	lset labels.Labels
	smp  oneSample
}

func (s *latestSeries) Labels() labels.Labels { return s.lset }

func (s *latestSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if r, ok := it.(interface{ Reset(storage.Samples) }); ok {
		r.Reset(&s.smp)
		return it
	}
	return storage.NewListSeriesIterator(&s.smp)
}

// oneSample is a list of one float sample, and that sample.
type oneSample struct {
	t int64
	v float64
}

func (s *oneSample) Get(int) chunks.Sample         { return s }
func (s *oneSample) Len() int                      { return 1 }
func (s *oneSample) T() int64                      { return s.t }
func (s *oneSample) ST() int64                     { return 0 }
func (s *oneSample) F() float64                    { return s.v }
func (s *oneSample) H() *histogram.Histogram       { return nil }
func (s *oneSample) FH() *histogram.FloatHistogram { return nil }
func (s *oneSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s *oneSample) Copy() chunks.Sample           { c := *s; return &c }
