package soak

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFit(t *testing.T) {
	for _, tc := range []struct {
		name            string
		xs, ys          []float64
		mean, perSecond float64
		percentPer10Min float64
	}{
		{"flat", []float64{0, 10, 20, 30}, []float64{100, 100, 100, 100}, 100, 0, 0},
		{"line", []float64{0, 10, 20, 30}, []float64{100, 101, 102, 103}, 101.5, 0.1, 100 * 60 / 101.5},
		{"sawtooth without trend", []float64{0, 10, 20, 30, 40}, []float64{10, 20, 10, 20, 10}, 14, 0, 0},
		{"falling", []float64{0, 600}, []float64{200, 100}, 150, -1.0 / 6, -100 * 100.0 / 150},
		{"one point", []float64{5}, []float64{7}, 7, 0, 0},
		{"one x", []float64{5, 5}, []float64{1, 3}, 2, 0, 0},
		{"none", nil, nil, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := Fit(tc.xs, tc.ys)
			require.InDelta(t, tc.mean, tr.Mean, 1e-9)
			require.InDelta(t, tc.perSecond, tr.PerSecond, 1e-9)
			require.InDelta(t, tc.perSecond*600, tr.Per10Min(), 1e-9)
			require.InDelta(t, tc.percentPer10Min, tr.PercentPer10Min(), 1e-9)
			require.Equal(t, len(tc.xs), tr.N)
		})
	}
}

func TestHistogramQuantile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lat     []time.Duration
		q       float64
		want    time.Duration
		maxWant time.Duration
	}{
		{"empty", nil, 0.99, 0, 0},
		{"one", []time.Duration{5 * time.Millisecond}, 0.5, 5 * time.Millisecond, 5 * time.Millisecond},
		{"p99 of 1..100 ms", msRange(1, 100), 0.99, 99 * time.Millisecond, 100 * time.Millisecond},
		{"p50 of 1..100 ms", msRange(1, 100), 0.50, 50 * time.Millisecond, 100 * time.Millisecond},
		{"sub-microsecond", []time.Duration{100, 200}, 1, 200, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			for _, d := range tc.lat {
				h.Add(d)
			}
			require.Equal(t, int64(len(tc.lat)), h.Count())
			require.Equal(t, tc.maxWant, h.Max())
			got := h.Quantile(tc.q)
			require.InDelta(t, float64(tc.want), float64(got), 0.011*float64(tc.want), "within the 1%% buckets: %s", got)
			require.LessOrEqual(t, got, h.Max())
		})
	}
}

func msRange(from, to int) []time.Duration {
	var out []time.Duration
	for i := to; i >= from; i-- { // order does not matter
		out = append(out, time.Duration(i)*time.Millisecond)
	}
	return out
}

func TestWindow(t *testing.T) {
	var w Window
	w.EndWarmup()
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() { w.Observe(time.Duration(i+1)*time.Millisecond, 200) })
	}
	wg.Wait()
	w.Observe(time.Second, 503)
	w.Observe(2*time.Second, 0)
	a := w.Take()
	require.Equal(t, int64(100), a.Accepted)
	require.Equal(t, int64(2), a.Rejected)
	require.Equal(t, 50*time.Millisecond, a.P50)
	require.Equal(t, 99*time.Millisecond, a.P99)
	require.Equal(t, 100*time.Millisecond, a.Max, "rejected answers have no latency")

	w.Observe(7*time.Millisecond, 204)
	a = w.Take()
	require.Equal(t, Answers{Accepted: 1, P50: 7 * time.Millisecond, P99: 7 * time.Millisecond, Max: 7 * time.Millisecond}, a)

	h, st := w.Run()
	require.Equal(t, int64(101), h.Count())
	require.Equal(t, map[int]int64{200: 100, 204: 1, 503: 1, 0: 1}, st)
}

func TestParseMemStat(t *testing.T) {
	profile := `heap profile: 3: 4096 [10: 81920] @ heap/524288
1: 2048 [1: 2048] @ 0x4a 0x4b
#	0x4a	main.f+0x1	/x.go:1

# runtime.MemStats
# Alloc = 123456
# TotalAlloc = 999999
# HeapAlloc = 123456
# HeapInuse = 200000
`
	for _, tc := range []struct {
		name, text, stat string
		want             int64
		err              string
	}{
		{"heap alloc", profile, "HeapAlloc", 123456, ""},
		{"heap inuse", profile, "HeapInuse", 200000, ""},
		{"not a prefix of another", profile, "Alloc", 123456, ""},
		{"missing", "heap profile: 0: 0 [0: 0] @ heap/524288\n", "HeapAlloc", 0, "no HeapAlloc"},
		{"not a number", "# HeapAlloc = lots\n", "HeapAlloc", 0, "HeapAlloc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := ParseMemStat(strings.NewReader(tc.text), tc.stat)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, n)
		})
	}
}

func TestTopicOfPartitionDir(t *testing.T) {
	for _, tc := range []struct{ dir, topic string }{
		{"topic-monitor-0", "topic-monitor"},
		{"topic-metrics-17", "topic-metrics"},
		{"a%2Fb-3", "a/b"},
		{"nopartition", "nopartition"},
		{"topic-x", "topic-x"},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			require.Equal(t, tc.topic, TopicOfPartitionDir(tc.dir))
		})
	}
}

func TestMeasureDisk(t *testing.T) {
	dir := t.TempDir()
	write := func(rel string, n int) {
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, make([]byte, n), 0o644))
	}
	write("kafka/meta.json", 100)
	write("kafka/partitions/topic-monitor-0/0.dat", 40000)
	write("kafka/partitions/topic-monitor-1/0.dat", 40000)
	write("kafka/partitions/topic-metrics-0/0.dat", 80000)
	write("tsdb/wal/00000000", 30000)
	write("ruler/x/chunks", 10000)
	write("other", 5000)
	u, err := MeasureDisk(dir)
	require.NoError(t, err)
	// Allocated blocks: at least the bytes written, at most a few blocks more.
	near := func(want, got int64) {
		t.Helper()
		require.GreaterOrEqual(t, got, want)
		require.Less(t, got, want+5*8192)
	}
	near(160100, u.Kafka)
	near(80000, u.Topics["topic-monitor"])
	near(80000, u.Topics["topic-metrics"])
	require.Len(t, u.Topics, 2)
	near(30000, u.TSDB)
	near(10000, u.Ruler)
	near(205100, u.Total)

	_, err = MeasureDisk(filepath.Join(dir, "missing"))
	require.NoError(t, err, "a data dir not created yet holds nothing")
}

func samplesAt(rss ...int64) Samples {
	out := make(Samples, len(rss))
	for i, r := range rss {
		out[i] = Sample{At: time.Duration(i+1) * 10 * time.Second, RSS: r, Heap: -1}
	}
	return out
}

func TestLastHalfAndCores(t *testing.T) {
	s := samplesAt(1, 2, 3, 4, 5, 6)
	require.Equal(t, []int64{3, 4, 5, 6}, rssOf(s.LastHalf()), "from 30s, half of 60s")
	require.Empty(t, Samples(nil).LastHalf())
	for i := range s {
		s[i].CPU = time.Duration(i) * 5 * time.Second
	}
	require.InDelta(t, 0.5, s.Cores(cpuOf), 1e-9)
	require.Zero(t, s[:1].Cores(cpuOf))
}

func rssOf(s Samples) []int64 {
	var out []int64
	for _, p := range s {
		out = append(out, p.RSS)
	}
	return out
}

func TestBeforeRetention(t *testing.T) {
	withKafka := func(kafka ...int64) Samples {
		s := samplesAt(make([]int64, len(kafka))...)
		for i, k := range kafka {
			s[i].Disk.Kafka = k
		}
		return s
	}
	for _, tc := range []struct {
		name      string
		s         Samples
		retention time.Duration
		wantAt    time.Duration
		ok        bool
	}{
		{"growing, shorter than retention", withKafka(1, 2, 3), time.Minute, 30 * time.Second, true},
		{"cut by retention", withKafka(1, 2, 3, 4, 5, 6, 7), 40 * time.Second, 30 * time.Second, true},
		{"cut by the first shrink", withKafka(1, 2, 3, 2, 5), time.Hour, 30 * time.Second, true},
		{"retention before the first sample", withKafka(1, 2), 5 * time.Second, 0, false},
		{"none", nil, time.Hour, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := tc.s.BeforeRetention(tc.retention)
			require.Equal(t, tc.ok, ok)
			require.Equal(t, tc.wantAt, p.At)
		})
	}
}

func TestPerSample(t *testing.T) {
	p := Sample{At: time.Minute, AcceptedSamples: 1000, Disk: DiskUsage{Kafka: 25000, Topics: map[string]int64{"topic-monitor": 10000, "topic-metrics": 15000}}}
	d := PerSample(p)
	require.InDelta(t, 25, d.All, 1e-9)
	require.InDelta(t, 10, d.ByTopic["topic-monitor"], 1e-9)
	require.InDelta(t, 15, d.ByTopic["topic-metrics"], 1e-9)
	require.Zero(t, PerSample(Sample{Disk: DiskUsage{Kafka: 5}}).All, "nothing accepted: no ratio")
}

func TestAnalyseChecks(t *testing.T) {
	cfg := Config{Retention: 3 * time.Minute, Goals: Goals{RSSSlopePercent: 1, RSSOverPrometheus: 2, BytesPerSample: 30, P99: 20 * time.Millisecond}}
	flat := samplesAt(100<<20, 100<<20, 100<<20, 100<<20)
	for i := range flat {
		flat[i].AcceptedSamples = int64(i+1) * 1000
		flat[i].Disk.Kafka = int64(i+1) * 20000 // 20 B per sample
		flat[i].Answers.P99 = 10 * time.Millisecond
	}
	growing := samplesAt(100<<20, 110<<20, 120<<20, 130<<20)
	prom := &PrometheusRun{Samples: samplesAt(40<<20, 40<<20)}
	fast := Histogram{}
	fast.Add(5 * time.Millisecond)
	slow := Histogram{}
	slow.Add(50 * time.Millisecond)
	for _, tc := range []struct {
		name string
		rep  Report
		want []string // [PASS], [FAIL] or skipped per check
	}{
		{"all met", Report{Samples: flat, Prometheus: prom, Latency: fast, Acked: 4000, Stored: 4000},
			[]string{"pass", "fail", "pass", "pass", "pass"}},
		{"growing RSS, slow, lost samples, no Prometheus", Report{Samples: growing, Latency: slow, Acked: 4000, Stored: 3990, PrometheusSkipped: "no binary"},
			[]string{"fail", "skip", "skip", "fail", "fail"}},
		{"stored not counted", Report{Samples: flat, Latency: fast, StoredErr: os.ErrDeadlineExceeded, Prometheus: &PrometheusRun{Samples: samplesAt(60<<20, 60<<20)}},
			[]string{"pass", "pass", "pass", "pass", "skip"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rep.Config = cfg
			a := Analyse(&tc.rep)
			var got []string
			for _, c := range a.Checks {
				switch {
				case c.Skipped != "":
					got = append(got, "skip")
				case c.Pass:
					got = append(got, "pass")
				default:
					got = append(got, "fail")
				}
			}
			require.Equal(t, tc.want, got)
			var out strings.Builder
			PrintSummary(&out, &tc.rep)
			require.Contains(t, out.String(), "== goals (issue 19) ==")
		})
	}
}

func TestMetricNames(t *testing.T) {
	require.Equal(t, []string{"a", "b"}, MetricNames([]map[string]string{
		{"__name__": "b", "x": "1"}, {"__name__": "a"}, {"__name__": "b", "x": "2"},
	}))
	require.Empty(t, MetricNames(nil))
}

func TestParseFlagNamesAndSupported(t *testing.T) {
	usage := `Usage: tmaflow [flags]
       tmaflow hash-secret [--algo argon2id|bcrypt] < secret

  -broker.retention duration
    	Records older than this are deleted (Kafka's log.retention.ms). (default 168h0m0s)
  -broker.segment-bytes int
    	A partition's log rolls into a new file at this size; -x is not a flag here. (default 16777216)
  -ruler.window duration
    	How much of topic-metrics is kept in memory.
`
	known := ParseFlagNames(usage)
	require.Equal(t, map[string]bool{"broker.retention": true, "broker.segment-bytes": true, "ruler.window": true}, known)

	cfg := Config{Retention: 3 * time.Minute, RetentionCheck: 10 * time.Second, SegmentBytes: 1 << 20}
	for _, tc := range []struct {
		name          string
		segment       int64
		args, unknown []string
	}{
		{"with segment bytes", 1 << 20,
			[]string{"-broker.retention=3m0s", "-ruler.window=3m0s", "-broker.segment-bytes=1048576"},
			[]string{"broker.stream-retention", "broker.retention-check-interval", "ruler.truncate-interval"}},
		{"tmaflow's segment size", 0,
			[]string{"-broker.retention=3m0s", "-ruler.window=3m0s"},
			[]string{"broker.stream-retention", "broker.retention-check-interval", "ruler.truncate-interval"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			c.SegmentBytes = tc.segment
			args, unknown := Supported(c.compression(), known)
			require.Equal(t, tc.args, args)
			require.Equal(t, tc.unknown, unknown)
		})
	}
}

func TestLogField(t *testing.T) {
	line := `time=2026-12-06T03:11:02.889Z level=WARN msg="disk budget: retention forced" component=budget used=12`
	for _, tc := range []struct{ key, want string }{
		{"time", "2026-12-06T03:11:02.889Z"},
		{"level", "WARN"},
		{"msg", "disk budget: retention forced"},
		{"used", "12"},
		{"missing", ""},
		{"get", ""}, // not a suffix of "budget"
	} {
		t.Run(tc.key, func(t *testing.T) {
			require.Equal(t, tc.want, logField(line, tc.key))
		})
	}
}

func TestSummariseLog(t *testing.T) {
	log := `time=t level=INFO msg="kafka broker started"
time=t level=WARN msg="memory budget reached, ingest refused" heap=1
time=t level=WARN msg="memory budget reached, ingest refused" heap=2
time=t level=ERROR msg=boom err="x"
time=t level=WARN msg="retention forced"
`
	s, err := SummariseLog(strings.NewReader(log))
	require.NoError(t, err)
	require.Equal(t, 5, s.Lines)
	require.Equal(t, 3, s.Warnings)
	require.Equal(t, 1, s.Errors)
	require.Equal(t, []string{"2× memory budget reached, ingest refused", "1× boom"}, s.Top(2))
	require.Len(t, s.Top(10), 3)
}

func TestWindowWarmup(t *testing.T) {
	var w Window
	w.Observe(time.Second, 200) // warm-up: counted, but not in the run's percentiles
	w.EndWarmup()
	w.Observe(time.Millisecond, 200)
	a := w.Take()
	require.Equal(t, int64(2), a.Accepted)
	require.Equal(t, time.Second, a.Max, "the interval shows the warm-up")
	h, st := w.Run()
	require.Equal(t, int64(1), h.Count())
	require.Equal(t, time.Millisecond, h.Max())
	require.Equal(t, map[int]int64{200: 2}, st)
}
