package ruler

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

// TestWindowMapsFullChunks: the window's full chunks leave the heap for
// memory-mapped files while it runs, not only at Close (a bare tsdb.Head
// never maps them, so the whole window stayed on the heap), and rules
// still read every sample.
func TestWindowMapsFullChunks(t *testing.T) {
	reg := prometheus.NewRegistry()
	w, err := openWindow(t.TempDir(), time.Hour.Milliseconds(), time.Second, reg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, w.Close()) })

	const n = 1000 // several chunks of at most 240 samples
	lset := labels.FromStrings("__name__", "x", TenantLabel, "acme")
	app := w.Appender(context.Background())
	for i := range n {
		_, err := app.Append(0, lset, int64(i)*100, float64(i))
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())

	require.Eventually(t, func() bool {
		return counterValue(t, reg, "prometheus_tsdb_mmap_chunks_total") >= 3
	}, 10*time.Second, 50*time.Millisecond, "full chunks are memory-mapped within the interval")

	q, err := w.Querier(0, n*100)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "x"))
	require.True(t, set.Next())
	it := set.At().Iterator(nil)
	got := 0
	for it.Next() != 0 {
		ts, v := it.At()
		require.Equal(t, int64(got)*100, ts)
		require.Equal(t, float64(got), v)
		got++
	}
	require.NoError(t, it.Err())
	require.Equal(t, n, got)
}

// counterValue is the value of an unlabelled counter in g (0 if absent).
func counterValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
