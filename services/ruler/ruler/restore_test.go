package ruler

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// A fresh ruler has seen nothing before its first sample: absent() with a
// `for` goes pending at start, it does not fire at once as if the series
// had been missing for the whole `for` already.
func TestFreshStartDoesNotFireAbsentAtOnce(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "demo", "rules.yml", `groups:
- name: silent
  interval: 100ms
  rules:
  - alert: Silent
    expr: absent(cpu_usage_percent{resource="demo-host"})
    for: 10m
`)
	clk := newClock(time.Now())
	ts := newTestService(t, testConfig(dir), clk.Now)
	ts.start(t)
	g := ts.group(t, "demo")
	require.Eventually(t, func() bool {
		ar := g.group.AlertingRules()[0]
		return ar.State() == rules.StatePending
	}, 5*time.Second, time.Millisecond, "pending from now on")
	require.Empty(t, ts.pub.alerts(t), "nothing fired or published")
}

// Series from different partitions interleave in time and are all kept; a
// sample older than its own series' newest is refused and counted, never
// stored where no query reads it.
func TestWindowOrder(t *testing.T) {
	now := time.Now()
	ts := newTestService(t, testConfig(t.TempDir()), func() time.Time { return now })
	batch := func(resource string, at time.Duration, v float64) *samples.Batch {
		return &samples.Batch{Tenant: "demo", Source: samples.SourceTMA, Series: []samples.Series{{
			Labels:  []samples.Label{{Name: "__name__", Value: "m"}, {Name: "resource", Value: resource}},
			Samples: []samples.Sample{{TimestampMs: now.Add(at).UnixMilli(), Value: v}},
		}}}
	}
	ts.ingest(batch("a", -time.Second, 1), 0)
	ts.ingest(batch("b", -time.Minute, 2), 0) // older, another series: kept
	ts.ingest(batch("a", -2*time.Second, 3), 0)
	count := func(outcome string) float64 {
		return testutil.ToFloat64(ts.metrics.samples.WithLabelValues(outcome))
	}
	require.Equal(t, 2.0, count(outcomeAppended))
	require.Equal(t, 1.0, count(outcomeRefused))

	q, err := ts.win.Querier(now.Add(-time.Hour).UnixMilli(), now.UnixMilli())
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
	n := 0
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != chunkenc.ValNone {
			n++
		}
	}
	require.NoError(t, set.Err())
	require.Equal(t, 2, n, "what was appended is what queries see")
}
