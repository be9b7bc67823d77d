package ruler

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

func TestLatestCache(t *testing.T) {
	a := labels.FromStrings("__name__", "cpu", "resource", "a")
	b := labels.FromStrings("__name__", "cpu", "resource", "b")
	type want struct {
		l  labels.Labels
		t  int64
		v  float64
		ok bool
	}
	for _, tc := range []struct {
		name string
		do   func(c *latestCache)
		want []want
	}{
		{"newest kept", func(c *latestCache) { c.set(a, 10, 1); c.set(a, 20, 2) }, []want{{a, 20, 2, true}, {b, 0, 0, false}}},
		{"a late commit of an older sample does not regress", func(c *latestCache) { c.set(a, 20, 2); c.set(a, 10, 1) }, []want{{a, 20, 2, true}}},
		{"same time, the last value", func(c *latestCache) { c.set(a, 20, 2); c.set(a, 20, 3) }, []want{{a, 20, 3, true}}},
		{"series apart", func(c *latestCache) { c.set(a, 20, 2); c.set(b, 30, 3) }, []want{{a, 20, 2, true}, {b, 30, 3, true}}},
		{"forgotten after a histogram", func(c *latestCache) { c.set(a, 20, 2); c.forget(a); c.set(a, 30, 3) }, []want{{a, 0, 0, false}}},
		{"truncated", func(c *latestCache) { c.set(a, 20, 2); c.set(b, 40, 4); c.truncate(30) }, []want{{a, 0, 0, false}, {b, 40, 4, true}}},
		{"a forgotten series comes back after truncation", func(c *latestCache) { c.set(a, 20, 2); c.forget(a); c.truncate(30); c.set(a, 50, 5) }, []want{{a, 50, 5, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newLatestCache()
			tc.do(c)
			for _, w := range tc.want {
				ts, v, ok := c.get(w.l)
				require.Equal(t, w.ok, ok, w.l.String())
				require.Equal(t, w.t, ts)
				require.Equal(t, w.v, v)
			}
		})
	}
}
