package persister

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// cachedStore returns a store on a test TSDB with a series cache on a
// clock the test moves.
func cachedStore(t *testing.T, maxSeries int) (*store, *tsdb.DB, *time.Time) {
	t.Helper()
	now := base
	db := openTestDB(t, time.Hour)
	return &store{db: db, series: newSeriesCache(func() time.Time { return now }, time.Minute, maxSeries, nil)}, db, &now
}

// decoded is b as the handler has it: decoded from a record, with the
// encodings of its series' labels.
type decodedBatch struct {
	*samples.Batch
	encoded []string
}

func decoded(t *testing.T, b *samples.Batch) decodedBatch {
	t.Helper()
	d := samples.Decoder{EncodeLabels: true}
	got, err := d.Decode(samples.Encode(nil, b))
	require.NoError(t, err)
	return decodedBatch{got, d.EncodedLabels()}
}

func (s *store) appendDecoded(t *testing.T, b decodedBatch) appendResult {
	t.Helper()
	res, err := s.appendThen(context.Background(), b.Batch, b.encoded, nil)
	require.NoError(t, err)
	return res
}

func (s *store) prepareDecoded(b decodedBatch) ([]prepared, appendResult) {
	var res appendResult
	return prepare(b.Batch, &res, s.series, b.encoded), res
}

func TestSeriesCacheAppendsByReference(t *testing.T) {
	st, db, _ := cachedStore(t, 100)
	st.appendDecoded(t, decoded(t, batch("acme",
		at(series("temp_celsius", "resource", "a"), 0*time.Second, 20),
		at(series("temp_celsius", "resource", "b", "empty", ""), 0*time.Second, 30),
	)))

	next := decoded(t, batch("acme",
		at(series("temp_celsius", "resource", "a"), 10*time.Second, 21),
		at(series("temp_celsius", "resource", "b", "empty", ""), 10*time.Second, 31),
		at(series("temp_celsius", "resource", "c"), 10*time.Second, 40),
	))
	prepared, _ := st.prepareDecoded(next)
	require.Len(t, prepared, 3)
	for i, p := range prepared[:2] {
		require.NotNil(t, p.cached, "series %d seen before", i)
		require.NotZero(t, p.cached.reference(), "series %d appended before", i)
		require.Equal(t, p.cached.lset.Hash(), p.cached.hash)
	}
	require.Equal(t, `{__name__="temp_celsius", resource="b", tenant="acme"}`, prepared[1].lset.String(), "built as without the cache")
	require.Zero(t, prepared[2].cached.reference(), "new series: no reference yet")

	res := st.appendDecoded(t, next)
	require.Equal(t, 3, res.appended)
	require.NotZero(t, prepared[2].cached.reference(), "the cached entry got the new series' reference")
	require.Equal(t, map[string][]samples.Sample{
		`{__name__="temp_celsius", resource="a", tenant="acme"}`: {{TimestampMs: ms(0), Value: 20}, {TimestampMs: ms(10 * time.Second), Value: 21}},
		`{__name__="temp_celsius", resource="b", tenant="acme"}`: {{TimestampMs: ms(0), Value: 30}, {TimestampMs: ms(10 * time.Second), Value: 31}},
		`{__name__="temp_celsius", resource="c", tenant="acme"}`: {{TimestampMs: ms(10 * time.Second), Value: 40}},
	}, stored(t, db))
	require.Equal(t, 5.0, testutil.ToFloat64(st.series.hits))
	require.Equal(t, 3.0, testutil.ToFloat64(st.series.misses), "a, b, then c")
}

func TestSeriesCacheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newSeriesCache(time.Now, time.Minute, 10, reg)
	var res appendResult
	b := decoded(t, batch("acme", at(series("m", "a", "1")), at(series("m", "a", "2"))))
	prepare(b.Batch, &res, c, b.encoded)
	prepare(b.Batch, &res, c, b.encoded)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP tmaflow_persister_series_cache_lookups_total Series of topic-metrics batches looked up in the series cache, by result: hit (appended by reference) or miss (labels built and looked up in the TSDB head).
# TYPE tmaflow_persister_series_cache_lookups_total counter
tmaflow_persister_series_cache_lookups_total{result="hit"} 2
tmaflow_persister_series_cache_lookups_total{result="miss"} 2
# HELP tmaflow_persister_series_cache_series Series in the series cache, both generations (a series promoted to the current one counted twice).
# TYPE tmaflow_persister_series_cache_series gauge
tmaflow_persister_series_cache_series 2
`)))
}

// A reference the head no longer knows (the series was dropped by head
// GC since) makes the head look the label set up: the sample goes to the
// right series.
func TestSeriesCacheStaleReference(t *testing.T) {
	st, db, _ := cachedStore(t, 100)
	st.appendDecoded(t, decoded(t, batch("acme", at(series("up", "resource", "a"), 0*time.Second, 1))))
	prepared, _ := st.prepareDecoded(decoded(t, batch("acme", at(series("up", "resource", "a")))))
	prepared[0].cached.setReference(storage.SeriesRef(1 << 40))
	st.appendDecoded(t, decoded(t, batch("acme", at(series("up", "resource", "a"), 10*time.Second, 0))))
	require.Equal(t, map[string][]samples.Sample{
		`{__name__="up", resource="a", tenant="acme"}`: {{TimestampMs: ms(0), Value: 1}, {TimestampMs: ms(10 * time.Second), Value: 0}},
	}, stored(t, db))
}

func TestSeriesCacheKeys(t *testing.T) {
	st, _, _ := cachedStore(t, 100)
	b := decoded(t, batch("acme",
		at(series("m", "a", "1", "b", "2")),
		samples.Series{Labels: []samples.Label{{Name: "b", Value: "2"}, {Name: "__name__", Value: "m"}, {Name: "a", Value: "1"}}}, // other order, same label set
		at(series("m", "a", "12")),
		at(series("m", "a", "1", "b", "2"), time.Second, 1),
	))
	other := decoded(t, batch("other", at(series("m", "a", "1", "b", "2"))))
	cached, _ := st.series.lookup(b.Tenant, b.encoded)
	require.Equal(t, []*cachedSeries{nil, nil, nil, nil}, cached)
	st.prepareDecoded(b)
	cached, _ = st.series.lookup(b.Tenant, b.encoded)
	require.NotNil(t, cached[0])
	require.Same(t, cached[0], cached[3], "equal labels share an entry")
	require.NotSame(t, cached[0], cached[1], "labels in another order are another entry")
	require.Equal(t, cached[0].lset, cached[1].lset, "of the same label set")
	require.NotSame(t, cached[0], cached[2])
	otherCached, _ := st.series.lookup(other.Tenant, other.encoded)
	require.Nil(t, otherCached[0], "another tenant's series is another series")
	st.prepareDecoded(other)
	otherCached, _ = st.series.lookup(other.Tenant, other.encoded)
	require.Equal(t, `{__name__="m", a="1", b="2", tenant="other"}`, otherCached[0].lset.String())

	// Without encodings (a batch not from a record) the cache is left out.
	var res appendResult
	for _, p := range prepare(batch("acme", at(series("m", "a", "1", "b", "2"))), &res, st.series, nil) {
		require.Nil(t, p.cached)
	}
}

// A hash collision leaves the second series uncached: it is still stored
// under its own labels.
func TestSeriesCacheCollision(t *testing.T) {
	st, db, _ := cachedStore(t, 100)
	a := decoded(t, batch("acme", at(series("m", "s", "a"), 0*time.Second, 1)))
	b := decoded(t, batch("acme", at(series("m", "s", "b"), 0*time.Second, 2)))
	st.appendDecoded(t, a)
	_, keys := st.series.lookup(a.Tenant, a.encoded)
	_, bKeys := st.series.lookup(b.Tenant, b.encoded)
	st.series.mu.Lock()
	st.series.cur[bKeys[0]] = st.series.cur[keys[0]] // b's key now holds a
	st.series.mu.Unlock()
	prepared, _ := st.prepareDecoded(b)
	require.Nil(t, prepared[0].cached)
	st.appendDecoded(t, b)
	require.Equal(t, map[string][]samples.Sample{
		`{__name__="m", s="a", tenant="acme"}`: {{TimestampMs: ms(0), Value: 1}},
		`{__name__="m", s="b", tenant="acme"}`: {{TimestampMs: ms(0), Value: 2}},
	}, stored(t, db))
}

func TestSeriesCacheSkipsRejected(t *testing.T) {
	st, _, _ := cachedStore(t, 100)
	b := decoded(t, batch("acme", at(series("m", "tenant", "intruder"), 0*time.Second, 1)))
	for range 2 {
		prepared, res := st.prepareDecoded(b)
		require.Empty(t, prepared)
		require.Len(t, rejectedOf(res, reasonTenantMismatch), 1, "rejected every time")
	}
	cached, _ := st.series.lookup(b.Tenant, b.encoded)
	require.Nil(t, cached[0])
}

func TestSeriesCacheRotation(t *testing.T) {
	st, _, now := cachedStore(t, 3)
	c := st.series
	add := func(names ...string) {
		t.Helper()
		for _, n := range names {
			st.prepareDecoded(decoded(t, batch("acme", at(series(n)))))
		}
	}
	has := func(n string) bool {
		t.Helper()
		b := decoded(t, batch("acme", at(series(n))))
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, gen := range []map[uint64]*cachedSeries{c.cur, c.prev} {
			for _, e := range gen {
				if e.labels == b.encoded[0] {
					return true
				}
			}
		}
		return false
	}
	add("a", "b")
	*now = now.Add(time.Minute)
	add("a") // rotates: a is promoted, b stays in the previous generation
	require.True(t, has("a"))
	require.True(t, has("b"))
	*now = now.Add(time.Minute)
	add("a") // rotates again: b, unused for a whole rotation, is dropped
	require.True(t, has("a"))
	require.False(t, has("b"))

	add("c", "d") // with a, the current generation is full
	add("e")      // rotates by size
	for _, n := range []string{"a", "c", "d", "e"} {
		require.True(t, has(n), n)
	}
	require.Len(t, c.cur, 1)
}
