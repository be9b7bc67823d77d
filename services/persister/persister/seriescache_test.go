package persister

import (
	"context"
	"testing"
	"time"

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
	return &store{db: db, series: newSeriesCache(func() time.Time { return now }, time.Minute, maxSeries)}, db, &now
}

// decoded encodes and decodes b, so its strings share a record's memory
// as in the handler.
func decoded(t *testing.T, b *samples.Batch) *samples.Batch {
	t.Helper()
	d, err := samples.Decode(samples.Encode(nil, b))
	require.NoError(t, err)
	return d
}

func TestSeriesCacheAppendsByReference(t *testing.T) {
	st, db, _ := cachedStore(t, 100)
	first := decoded(t, batch("acme",
		at(series("temp_celsius", "resource", "a"), 0*time.Second, 20),
		at(series("temp_celsius", "resource", "b", "empty", ""), 0*time.Second, 30),
	))
	_, err := st.append(context.Background(), first)
	require.NoError(t, err)

	next := decoded(t, batch("acme",
		at(series("temp_celsius", "resource", "a"), 10*time.Second, 21),
		at(series("temp_celsius", "resource", "b", "empty", ""), 10*time.Second, 31),
		at(series("temp_celsius", "resource", "c"), 10*time.Second, 40),
	))
	var res appendResult
	prepared := prepare(next, &res, st.series)
	require.Len(t, prepared, 3)
	for i, p := range prepared[:2] {
		require.NotNil(t, p.cached, "series %d seen before", i)
		require.NotZero(t, p.cached.reference(), "series %d appended before", i)
		require.Equal(t, p.cached.lset.Hash(), p.cached.hash)
	}
	require.Equal(t, `{__name__="temp_celsius", resource="b", tenant="acme"}`, prepared[1].lset.String(), "built as without the cache")
	require.Zero(t, prepared[2].cached.reference(), "new series: no reference yet")

	res, err = st.append(context.Background(), next)
	require.NoError(t, err)
	require.Equal(t, 3, res.appended)
	require.NotZero(t, prepared[2].cached.reference(), "the cached entry got the new series' reference")
	require.Equal(t, map[string][]samples.Sample{
		`{__name__="temp_celsius", resource="a", tenant="acme"}`: {{TimestampMs: ms(0), Value: 20}, {TimestampMs: ms(10 * time.Second), Value: 21}},
		`{__name__="temp_celsius", resource="b", tenant="acme"}`: {{TimestampMs: ms(0), Value: 30}, {TimestampMs: ms(10 * time.Second), Value: 31}},
		`{__name__="temp_celsius", resource="c", tenant="acme"}`: {{TimestampMs: ms(10 * time.Second), Value: 40}},
	}, stored(t, db))
}

// A reference the head no longer knows (the series was dropped by head
// GC since) makes the head look the label set up: the sample goes to the
// right series.
func TestSeriesCacheStaleReference(t *testing.T) {
	st, db, _ := cachedStore(t, 100)
	_, err := st.append(context.Background(), decoded(t, batch("acme", at(series("up", "resource", "a"), 0*time.Second, 1))))
	require.NoError(t, err)
	var res appendResult
	for _, p := range prepare(decoded(t, batch("acme", at(series("up", "resource", "a")))), &res, st.series) {
		p.cached.setReference(storage.SeriesRef(1 << 40))
	}
	_, err = st.append(context.Background(), decoded(t, batch("acme", at(series("up", "resource", "a"), 10*time.Second, 0))))
	require.NoError(t, err)
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
		at(series("m", "a", "1", "b", "2")),
	))
	other := decoded(t, batch("other", at(series("m", "a", "1", "b", "2"))))
	var res appendResult
	cached, _ := st.series.lookup(b.Tenant, b.Series)
	require.Equal(t, []*cachedSeries{nil, nil, nil, nil}, cached)
	prepare(b, &res, st.series)
	cached, _ = st.series.lookup(b.Tenant, b.Series)
	require.NotNil(t, cached[0])
	require.Same(t, cached[0], cached[3], "equal labels share an entry")
	require.NotSame(t, cached[0], cached[1], "labels in another order are another entry")
	require.Equal(t, cached[0].lset, cached[1].lset, "of the same label set")
	require.NotSame(t, cached[0], cached[2])
	otherCached, _ := st.series.lookup(other.Tenant, other.Series)
	require.Nil(t, otherCached[0], "another tenant's series is another series")
	prepare(other, &res, st.series)
	otherCached, _ = st.series.lookup(other.Tenant, other.Series)
	require.Equal(t, `{__name__="m", a="1", b="2", tenant="other"}`, otherCached[0].lset.String())
}

func TestSeriesCacheSkipsRejected(t *testing.T) {
	st, _, _ := cachedStore(t, 100)
	b := decoded(t, batch("acme", at(series("m", "tenant", "intruder"), 0*time.Second, 1)))
	for range 2 {
		var res appendResult
		require.Empty(t, prepare(b, &res, st.series))
		require.Len(t, rejectedOf(res, reasonTenantMismatch), 1, "rejected every time")
	}
	cached, _ := st.series.lookup(b.Tenant, b.Series)
	require.Nil(t, cached[0])
}

func TestSeriesCacheRotation(t *testing.T) {
	st, _, now := cachedStore(t, 3)
	c := st.series
	add := func(names ...string) {
		t.Helper()
		for _, n := range names {
			var res appendResult
			prepare(decoded(t, batch("acme", at(series(n)))), &res, c)
		}
	}
	has := func(n string) bool {
		t.Helper()
		b := decoded(t, batch("acme", at(series(n))))
		c.mu.Lock()
		defer c.mu.Unlock()
		k := c.keyOf(b.Tenant, b.Series[0].Labels)
		for _, gen := range []map[uint64][]*cachedSeries{c.cur, c.prev} {
			for _, e := range gen[k] {
				if e.is(b.Tenant, b.Series[0].Labels) {
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
	require.Equal(t, 1, c.curLen)
}
