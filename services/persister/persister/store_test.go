package persister

import (
	"context"
	"math"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// rejectedOf flattens the rejections of one reason.
func rejectedOf(res appendResult, reason string) []samples.Sample {
	var out []samples.Sample
	if b, ok := res.rejected[reason]; ok {
		for _, s := range b.Series {
			out = append(out, s.Samples...)
		}
	}
	return out
}

func TestAppendStoresWithTenantLabel(t *testing.T) {
	db := openTestDB(t, time.Hour)
	st := &store{db: db}
	b := batch("acme",
		at(series("cpu_usage_percent", "resource", "node-1", "empty", ""), 0*time.Second, 1, 15*time.Second, 2.5),
		at(series("mem_bytes", "resource", "node-1", "tenant", "acme"), 0*time.Second, 1e9),
	)
	res, err := st.append(context.Background(), b)
	require.NoError(t, err)
	require.Equal(t, 3, res.appended)
	require.Empty(t, res.rejected)
	got := stored(t, db)
	// The empty label is dropped (absent in Prometheus), the tenant label
	// added where missing.
	require.Equal(t, map[string][]samples.Sample{
		`{__name__="cpu_usage_percent", resource="node-1", tenant="acme"}`: {{TimestampMs: ms(0), Value: 1}, {TimestampMs: ms(15 * time.Second), Value: 2.5}},
		`{__name__="mem_bytes", resource="node-1", tenant="acme"}`:         {{TimestampMs: ms(0), Value: 1e9}},
	}, got)
}

// TestRedeliveryIsIdempotent appends the same batches again, as after a
// crash between the TSDB commit and the offset commit: nothing is stored
// twice and nothing is dead-lettered, with and without an out-of-order
// window.
func TestRedeliveryIsIdempotent(t *testing.T) {
	for _, window := range []time.Duration{time.Hour, 0} {
		t.Run("window "+window.String(), func(t *testing.T) {
			db := openTestDB(t, window)
			st := &store{db: db}
			b1 := batch("acme", at(series("temp_celsius", "resource", "a"), 0*time.Second, 20, 10*time.Second, 21, 20*time.Second, 22))
			b2 := batch("acme", at(series("temp_celsius", "resource", "a"), 30*time.Second, 23, 40*time.Second, 24))
			for _, b := range []*samples.Batch{b1, b2} {
				res, err := st.append(context.Background(), b)
				require.NoError(t, err)
				require.Empty(t, res.rejected)
			}
			before := stored(t, db)
			require.Equal(t, 5, countStored(before))

			// Both batches again, in order, then the first once more.
			total := appendResult{}
			for _, b := range []*samples.Batch{b1, b2, b1} {
				res, err := st.append(context.Background(), b)
				require.NoError(t, err)
				require.Empty(t, res.rejected, "re-delivered samples must not be dead-lettered")
				total.appended += res.appended
				total.stored += res.stored
			}
			require.Equal(t, 8, total.appended+total.stored)
			if window == 0 {
				// Behind the head: refused, recognised as stored.
				require.Equal(t, 7, total.stored)
			}
			require.Equal(t, before, stored(t, db))
		})
	}
}

func TestOutOfOrder(t *testing.T) {
	tests := []struct {
		name       string
		window     time.Duration
		late       time.Duration // sample time after the series reached 3h
		wantReason string        // "" when stored
	}{
		{"within window", time.Hour, 2*time.Hour + 30*time.Minute, ""},
		{"at the window edge", time.Hour, 2 * time.Hour, ""},
		{"beyond window", time.Hour, 90 * time.Minute, reasonTooOld},
		{"no window, behind the series", 0, 2*time.Hour + 30*time.Minute, reasonOutOfOrder},
		{"no window, behind the head", 0, 30 * time.Minute, reasonOutOfBounds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTestDB(t, tt.window)
			st := &store{db: db}
			_, err := st.append(context.Background(), batch("acme", at(series("temp_celsius", "resource", "a"), 0*time.Second, 1, 3*time.Hour, 2)))
			require.NoError(t, err)

			late := batch("acme", at(series("temp_celsius", "resource", "a"), tt.late, 99, 3*time.Hour+time.Minute, 3))
			res, err := st.append(context.Background(), late)
			require.NoError(t, err)
			got := stored(t, db)[`{__name__="temp_celsius", resource="a", tenant="acme"}`]
			lateSample := samples.Sample{TimestampMs: ms(tt.late), Value: 99}
			if tt.wantReason == "" {
				require.Empty(t, res.rejected)
				require.Equal(t, 2, res.appended)
				require.Contains(t, got, lateSample)
				require.Len(t, got, 4)
				return
			}
			// The good sample of the batch is stored, the late one is not.
			require.Equal(t, 1, res.appended)
			require.Equal(t, []samples.Sample{lateSample}, rejectedOf(res, tt.wantReason))
			require.Len(t, res.rejected, 1)
			require.NotContains(t, got, lateSample)
			require.Len(t, got, 3)
			rb := res.rejected[tt.wantReason]
			require.Equal(t, "acme", rb.Tenant)
			require.Equal(t, late.Series[0].Labels, rb.Series[0].Labels, "the dead letter keeps the batch's labels")
		})
	}
}

func TestDuplicateTimestamps(t *testing.T) {
	db := openTestDB(t, time.Hour)
	st := &store{db: db}
	s := func(pts ...any) *samples.Batch { return batch("acme", at(series("x", "r", "1"), pts...)) }

	// Within one batch: the first value at a timestamp wins.
	res, err := st.append(context.Background(), s(time.Second, 1, time.Second, 1, time.Second, 2, 2*time.Second, 5))
	require.NoError(t, err)
	require.Equal(t, 2, res.appended)
	require.Equal(t, 1, res.stored)
	require.Equal(t, []samples.Sample{{TimestampMs: ms(time.Second), Value: 2}}, rejectedOf(res, reasonDuplicate))

	// Against the newest stored sample: another value is refused.
	res, err = st.append(context.Background(), s(2*time.Second, 6))
	require.NoError(t, err)
	require.Equal(t, []samples.Sample{{TimestampMs: ms(2 * time.Second), Value: 6}}, rejectedOf(res, reasonDuplicate))
	require.Equal(t, []samples.Sample{{TimestampMs: ms(time.Second), Value: 1}, {TimestampMs: ms(2 * time.Second), Value: 5}},
		stored(t, db)[`{__name__="x", r="1", tenant="acme"}`])

	// NaN equals itself bit for bit: a re-delivered NaN is no conflict.
	res, err = st.append(context.Background(), s(3*time.Second, math.NaN()))
	require.NoError(t, err)
	require.Equal(t, 1, res.appended)
	res, err = st.append(context.Background(), s(3*time.Second, math.NaN()))
	require.NoError(t, err)
	require.Empty(t, res.rejected)
}

func TestSeriesLabels(t *testing.T) {
	tests := []struct {
		name       string
		series     samples.Series
		wantReason string
		wantErr    string
	}{
		{"no name", samples.Series{Labels: []samples.Label{{Name: "a", Value: "b"}}}, reasonInvalidLabels, "no metric name"},
		{"empty name", samples.Series{Labels: []samples.Label{{Name: "__name__", Value: ""}}}, reasonInvalidLabels, "no metric name"},
		{"bad label name", series("x", "", "v"), reasonInvalidLabels, `invalid label name ""`},
		{"bad utf-8", series("x", "a", "\xff"), reasonInvalidLabels, "not valid UTF-8"},
		{"duplicate name", samples.Series{Labels: []samples.Label{{Name: "__name__", Value: "x"}, {Name: "a", Value: "1"}, {Name: "a", Value: "2"}}}, reasonInvalidLabels, `label name "a" is not unique`},
		{"other tenant", series("x", "tenant", "other"), reasonTenantMismatch, `tenant label "other" differs from the batch tenant "acme"`},
		{"empty tenant label", series("x", "tenant", ""), reasonTenantMismatch, "differs from the batch tenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTestDB(t, time.Hour)
			st := &store{db: db}
			ser := tt.series
			ser.Samples = []samples.Sample{{TimestampMs: ms(0), Value: 1}}
			res, err := st.append(context.Background(), batch("acme", ser, at(series("good"), 0*time.Second, 1)))
			require.NoError(t, err)
			require.Equal(t, 1, res.appended, "the good series is stored")
			require.Len(t, rejectedOf(res, tt.wantReason), 1)
			require.Contains(t, res.reasons[tt.wantReason], tt.wantErr)
		})
	}
}

func TestEqualSeriesAreMerged(t *testing.T) {
	db := openTestDB(t, 0)
	st := &store{db: db}
	// Two entries of one series, the later one first in time: without
	// merging, the second entry would be out of order at commit.
	res, err := st.append(context.Background(), batch("acme",
		at(series("x", "r", "1"), 20*time.Second, 2),
		at(series("x", "r", "1", "tenant", "acme"), 10*time.Second, 1),
	))
	require.NoError(t, err)
	require.Equal(t, 2, res.appended)
	require.Empty(t, res.rejected)
	require.Len(t, stored(t, db)[`{__name__="x", r="1", tenant="acme"}`], 2)
}

// TestBlockDurationBoundsHead: with -tsdb.block-duration=1m the head is
// compacted into blocks once it spans more than 1.5 minutes, so it holds
// minutes of samples, not the default's hours, and nothing is lost.
func TestBlockDurationBoundsHead(t *testing.T) {
	cfg := DefaultConfig().TSDB
	cfg.Path = t.TempDir()
	cfg.BlockDuration = time.Minute
	db, err := openTSDB(cfg, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	st := &store{db: db}
	const minutes = 10
	for s := range minutes * 6 {
		_, err := st.append(context.Background(), batch("acme", at(series("x", "r", "1"), time.Duration(s)*10*time.Second, float64(s))))
		require.NoError(t, err)
	}
	require.NoError(t, db.Compact(context.Background()))
	require.NotEmpty(t, db.Blocks(), "the head was compacted")
	head := time.Duration(db.Head().MaxTime()-db.Head().MinTime()) * time.Millisecond
	require.LessOrEqual(t, head, 3*time.Minute, "the head spans minutes, not hours")
	require.Len(t, stored(t, db)[`{__name__="x", r="1", tenant="acme"}`], minutes*6)
}

// BenchmarkAppend measures the TSDB append path of one batch of 100
// series of 10 samples each (about what the labeler publishes per
// resource), new timestamps every time.
func BenchmarkAppend(b *testing.B) {
	cfg := DefaultConfig().TSDB
	cfg.Path = b.TempDir()
	db, err := openTSDB(cfg, nil, nil)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, db.Close()) })
	st := &store{db: db}
	const nSeries, nSamples = 100, 10
	bt := &samples.Batch{Tenant: "acme", Source: samples.SourceTMA}
	for i := range nSeries {
		bt.Series = append(bt.Series, series("bench_value", "resource", strconv.Itoa(i), "site", "lab"))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for s := range bt.Series {
			bt.Series[s].Samples = bt.Series[s].Samples[:0]
			for j := range nSamples {
				bt.Series[s].Samples = append(bt.Series[s].Samples, samples.Sample{TimestampMs: int64(i*nSamples+j) * 1000, Value: float64(j)})
			}
		}
		res, err := st.append(context.Background(), bt)
		if err != nil || res.appended != nSeries*nSamples {
			b.Fatalf("append: %v, %d appended", err, res.appended)
		}
	}
	b.ReportMetric(float64(b.N*nSeries*nSamples)/b.Elapsed().Seconds(), "samples/s")
}

// TestPrepareLeavesBatchForRetry prepares one batch twice, as a retried
// TSDB commit does: samples are sorted in place but never compacted or
// extended there, so the second pass sees the same batch and decides the
// same. Large batches take the hash map, small ones the list.
func TestPrepareLeavesBatchForRetry(t *testing.T) {
	for _, extra := range []int{0, maxLinearMerge} {
		t.Run(strconv.Itoa(extra)+" more series", func(t *testing.T) {
			orig := batch("acme",
				at(series("x", "r", "1"), 2*time.Second, 5, time.Second, 1, time.Second, 2, 3*time.Second, 7),
				at(series("y", "r", "1"), time.Second, 1),
				at(series("z", "r", "1"), time.Second, 3),
				at(series("y", "r", "1", "tenant", "acme"), 2*time.Second, 2, time.Second, 1),
			)
			for i := range extra {
				orig.Series = append(orig.Series, at(series("w", "i", strconv.Itoa(i)), time.Second, 1))
			}
			// Decoded, as the handler has it: the series' samples share
			// the decoder's memory.
			b, err := (&samples.Decoder{}).Decode(samples.Encode(nil, orig))
			require.NoError(t, err)
			var results [2]appendResult
			var prepared [2][]prepared
			for i := range results {
				prepared[i] = prepare(b, &results[i], nil, nil)
			}
			require.Equal(t, results[0], results[1])
			require.Equal(t, prepared[0], prepared[1])
			require.Equal(t, 1, results[0].stored, "y repeats 1s with its value")
			require.Equal(t, []samples.Sample{{TimestampMs: ms(time.Second), Value: 2}}, rejectedOf(results[0], reasonDuplicate))
			require.Len(t, prepared[0], 3+extra)
			require.Equal(t, []samples.Sample{
				{TimestampMs: ms(time.Second), Value: 1}, {TimestampMs: ms(2 * time.Second), Value: 5}, {TimestampMs: ms(3 * time.Second), Value: 7},
			}, prepared[0][0].samples)
			require.Equal(t, []samples.Sample{{TimestampMs: ms(time.Second), Value: 1}, {TimestampMs: ms(2 * time.Second), Value: 2}}, prepared[0][1].samples)
			require.Equal(t, []samples.Sample{{TimestampMs: ms(time.Second), Value: 3}}, prepared[0][2].samples, "the merge did not overwrite the next series")
		})
	}
}

// Batches appended while a commit runs share the next commit; each caller
// returns only after its own samples were committed.
func TestGroupCommit(t *testing.T) {
	db := openTestDB(t, 0)
	var (
		mu      sync.Mutex
		commits []int
	)
	st := &store{db: db, series: newSeriesCache(time.Now, time.Minute, 1000, nil), onCommit: func(n int) {
		mu.Lock()
		commits = append(commits, n)
		mu.Unlock()
	}}
	const n = 64
	// Twice, so the second round finds the series in the cache.
	for _, ts := range []int64{1000, 2000} {
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				b := decoded(t, &samples.Batch{Tenant: "t", Series: []samples.Series{{
					Labels:  []samples.Label{{Name: "__name__", Value: "m"}, {Name: "i", Value: strconv.Itoa(i)}},
					Samples: []samples.Sample{{TimestampMs: ts, Value: float64(i)}},
				}}})
				res := st.appendDecoded(t, b)
				require.Equal(t, 1, res.appended)
				// Committed before append returned: a query sees it.
				got, err := st.storedValues(context.Background(), labels.FromStrings("__name__", "m", "i", strconv.Itoa(i), TenantLabel, "t"), ts, ts)
				require.NoError(t, err)
				require.Equal(t, map[int64]float64{ts: float64(i)}, got)
			})
		}
		wg.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for _, c := range commits {
		total += c
	}
	require.Equal(t, 2*n, total, "every batch committed once")
	t.Logf("%d batches in %d commits", 2*n, len(commits))
}
