package ruler

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
)

func TestThresholdOf(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{`cpu > 90`, true},
		{`90 < cpu{job="a"}`, true},
		{`(cpu) >= (90)`, true},
		{`cpu != 0`, true},
		{`cpu > bool 90`, false},
		{`cpu + 90`, false},
		{`cpu offset 1m > 90`, false},
		{`cpu @ 100 > 90`, false},
		{`cpu > other`, false},
		{`rate(cpu[1m]) > 90`, false},
		{`cpu`, false},
		{`1 > bool 2`, false},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			e, err := p.ParseExpr(tc.expr)
			require.NoError(t, err)
			_, ok := thresholdOf(e)
			require.Equal(t, tc.want, ok)
		})
	}
}

// TestThresholdMatchesEngine evaluates expressions with the threshold
// query function and with the PromQL engine on the same window and
// requires equal answers, and that the thresholds were answered from the
// newest samples where they can be.
func TestThresholdMatchesEngine(t *testing.T) {
	const lookback = 5 * time.Minute
	w, err := newWindow(t.TempDir(), time.Hour.Milliseconds(), nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, w.Close()) })
	now := time.UnixMilli(10 * time.Hour.Milliseconds())
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	series := func(name, tenant, res string) labels.Labels {
		return labels.FromStrings("__name__", name, TenantLabel, tenant, "resource_id", res)
	}
	app := w.Appender(context.Background())
	add := func(l labels.Labels, at time.Duration, v float64) {
		_, err := app.Append(0, l, ms(at), v)
		require.NoError(t, err)
	}
	for i, v := range []float64{10, 90, 95, 100, math.NaN(), -5, math.Inf(1)} {
		add(series("cpu", "a", fmt.Sprint(i)), -time.Minute, 50)
		add(series("cpu", "a", fmt.Sprint(i)), -time.Second, v)
	}
	add(series("cpu", "b", "0"), -time.Second, 99)     // another tenant
	add(series("cpu", "a", "stale"), -time.Minute, 99) // gone stale
	add(series("cpu", "a", "stale"), -time.Second, math.Float64frombits(value.StaleNaN))
	add(series("cpu", "a", "old"), -lookback, 99)                   // just out of the lookback
	add(series("cpu", "a", "edge"), -lookback+time.Millisecond, 99) // just in it
	add(series("mem", "a", "0"), -time.Second, 1)
	add(series("mem", "a", "later"), -time.Second, 1)
	add(series("mem", "a", "later"), time.Second, 200) // after the evaluation time: the engine answers
	add(series("temp", "a", "0"), -time.Second, 1)
	require.NoError(t, app.Commit())
	happ := w.Appender(context.Background())
	_, err = happ.AppendHistogram(0, series("temp", "a", "h"), ms(-time.Second), &histogram.Histogram{Count: 1, Sum: 1, Schema: 0, ZeroCount: 1}, nil)
	require.NoError(t, err)
	require.NoError(t, happ.Commit())

	p := parser.NewParser(parser.Options{})
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: lookback, Parser: p})
	latest := w.ruleQueryable(lookback)
	q := newTenantQueryable(latest, "a")
	engine := rules.EngineQueryFunc(eng, q)
	fallbacks := 0
	fast := thresholdQueryFunc(latest, q.tenant, p, func(ctx context.Context, qs string, ts time.Time) (promql.Vector, error) {
		fallbacks++
		return engine(ctx, qs, ts)
	})
	for _, tc := range []struct {
		expr     string
		fallback bool
	}{
		{`cpu > 90`, false},
		{`cpu >= 90`, false},
		{`cpu < 90`, false},
		{`cpu <= 90`, false},
		{`cpu == 90`, false},
		{`cpu != 90`, false},
		{`90 < cpu`, false},
		{`90 >= cpu{resource_id=~"1|2|3"}`, false},
		{`(cpu{resource_id!="0"}) > (-1)`, false},
		{`cpu{resource_id="none"} > 0`, false},
		{`absent_metric > 0`, false},
		{`mem > 0`, true},  // a sample after the evaluation time
		{`temp > 0`, true}, // a histogram
		{`cpu > bool 90`, true},
		{`cpu offset 1m > 10`, true},
		{`sum(cpu) > 10`, true},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			before := fallbacks
			got, err := fast(context.Background(), tc.expr, now)
			require.NoError(t, err)
			want, err := engine(context.Background(), tc.expr, now)
			require.NoError(t, err)
			require.ElementsMatch(t, vectorStrings(want), vectorStrings(got))
			require.Equal(t, tc.fallback, fallbacks > before, "answered by the engine")
		})
	}
}

// vectorStrings renders a vector with NaN comparable.
func vectorStrings(v promql.Vector) []string {
	out := make([]string, 0, len(v))
	for _, s := range v {
		out = append(out, fmt.Sprintf("%s %d %v %v %v", s.Metric, s.T, s.F, s.H, s.DropName))
	}
	return out
}

func BenchmarkFleetThreshold(b *testing.B) {
	w, err := newWindow(b.TempDir(), time.Hour.Milliseconds(), nil, nil)
	require.NoError(b, err)
	defer func() { require.NoError(b, w.Close()) }()
	now := time.Now()
	app := w.Appender(context.Background())
	for i := range 1000 {
		for j, name := range []string{"cpu_usage_percent", "mem", "disk", "net", "a", "b", "c", "d", "e", "f"} {
			_, err := app.Append(0, labels.FromStrings("__name__", name, "resource_id", fmt.Sprint(200000+i), TenantLabel, "default"), now.UnixMilli(), float64(j))
			require.NoError(b, err)
		}
	}
	require.NoError(b, app.Commit())
	p := parser.NewParser(parser.Options{})
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute, Parser: p})
	latest := w.ruleQueryable(5 * time.Minute)
	q := newTenantQueryable(latest, "default")
	for name, f := range map[string]rules.QueryFunc{
		"engine":    rules.EngineQueryFunc(eng, q),
		"threshold": thresholdQueryFunc(latest, q.tenant, p, nil),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, err := f(context.Background(), "cpu_usage_percent > 90", now)
				require.NoError(b, err)
				require.Empty(b, v)
			}
		})
	}
}
