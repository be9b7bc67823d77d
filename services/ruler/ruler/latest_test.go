package ruler

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

func TestLatestCache(t *testing.T) {
	const a, b = storage.SeriesRef(1), storage.SeriesRef(2)
	set := func(ref storage.SeriesRef, t int64, v float64) func(*latestCache) {
		return func(c *latestCache) { c.commit([]latestEntry{{ref: ref, t: t, v: v}}, nil) }
	}
	forget := func(ref storage.SeriesRef) func(*latestCache) {
		return func(c *latestCache) { c.commit(nil, []storage.SeriesRef{ref}) }
	}
	truncate := func(mint int64) func(*latestCache) { return func(c *latestCache) { c.truncate(mint) } }
	type want struct {
		ref storage.SeriesRef
		pt  latestPoint
		ok  bool
	}
	for _, tc := range []struct {
		name string
		do   []func(*latestCache)
		want []want
	}{
		{"newest kept", []func(*latestCache){set(a, 10, 1), set(a, 20, 2)}, []want{{a, latestPoint{20, 2}, true}, {b, latestPoint{}, false}}},
		{"a late commit of an older sample does not regress", []func(*latestCache){set(a, 20, 2), set(a, 10, 1)}, []want{{a, latestPoint{20, 2}, true}}},
		{"same time, the last value", []func(*latestCache){set(a, 20, 2), set(a, 20, 3)}, []want{{a, latestPoint{20, 3}, true}}},
		{"series apart", []func(*latestCache){set(a, 20, 2), set(b, 30, 3)}, []want{{a, latestPoint{20, 2}, true}, {b, latestPoint{30, 3}, true}}},
		{"not served after a histogram", []func(*latestCache){set(a, 20, 2), forget(a), set(a, 30, 3)}, []want{{a, latestPoint{}, false}}},
		{"a histogram first", []func(*latestCache){forget(a), set(a, 30, 3)}, []want{{a, latestPoint{}, false}}},
		{"truncated", []func(*latestCache){set(a, 20, 2), set(b, 40, 4), truncate(30)}, []want{{a, latestPoint{}, false}, {b, latestPoint{40, 4}, true}}},
		{"a series back after truncation", []func(*latestCache){set(a, 20, 2), forget(a), truncate(30), set(a, 50, 5)}, []want{{a, latestPoint{50, 5}, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newLatestCache()
			for _, do := range tc.do {
				do(c)
			}
			for _, w := range tc.want {
				pts := make([]latestPoint, 1)
				require.Equal(t, w.ok, c.lookup([]storage.SeriesRef{w.ref}, math.MaxInt64, pts), "series %d", w.ref)
				if w.ok {
					require.Equal(t, w.pt, pts[0])
				}
			}
			pts := make([]latestPoint, 2)
			require.False(t, c.lookup([]storage.SeriesRef{a, 99}, math.MaxInt64, pts), "one unknown series: none served")
		})
	}
}
