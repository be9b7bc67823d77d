package soak

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

const sampleHeader = "%7s %8s %6s %8s %9s %8s %8s %8s %7s %7s %10s %8s %6s %7s %6s\n"

func printHeader(out io.Writer) {
	_, _ = fmt.Fprintf(out, sampleHeader, "t", "RSS MiB", "files", "heap MiB", "disk MiB", "kafka", "tsdb", "ruler", "p50 ms", "p99 ms", "accepted/s", "rejected", "lag", "tmaflow", "bench")
	_, _ = fmt.Fprintf(out, sampleHeader, "", "", "MiB", "after GC", "", "MiB", "MiB", "MiB", "(10s)", "(10s)", "", "(10s)", "recs", "cores", "cores")
}

// printSample prints the last of samples.
func printSample(out io.Writer, samples Samples, interval time.Duration) {
	p := samples[len(samples)-1]
	pair := samples[max(len(samples)-2, 0):]
	heap := "-"
	if p.Heap >= 0 {
		heap = fmt.Sprintf("%.1f", mib(p.Heap))
	}
	var tf, bench float64
	if len(pair) == 2 {
		tf, bench = pair.Cores(cpuOf), pair.Cores(benchCPUOf)
	} else {
		tf, bench = p.CPU.Seconds()/p.At.Seconds(), 0
	}
	_, _ = fmt.Fprintf(out, "%6.0fs %8.1f %6.1f %8s %9.1f %8.1f %8.1f %8.1f %7.1f %7.1f %10.0f %8d %6d %7.2f %6.2f\n",
		p.At.Seconds(), mib(p.RSS), mib(p.RSSFile), heap, mib(p.Disk.Total), mib(p.Disk.Kafka), mib(p.Disk.TSDB), mib(p.Disk.Ruler),
		ms(p.Answers.P50), ms(p.Answers.P99), float64(p.Answers.Accepted)/interval.Seconds(), p.Answers.Rejected, p.Lag, tf, bench)
}

func benchCPUOf(p Sample) time.Duration { return p.BenchCPU }

// Trends are the slopes of the last half of a run.
type Trends struct {
	From                     time.Duration
	RSS, RSSFile, RSSAnon    Trend
	Heap                     Trend
	Disk, Kafka, TSDB, Ruler Trend
	P50, P99                 Trend // milliseconds
	AcceptedPerSecond        Trend
}

// LastHalfTrends fits every series over the last half of samples.
func LastHalfTrends(samples Samples) Trends {
	h := samples.LastHalf()
	t := Trends{
		RSS:     h.Trend(func(p Sample) float64 { return float64(p.RSS) }),
		RSSFile: h.Trend(func(p Sample) float64 { return float64(p.RSSFile) }),
		RSSAnon: h.Trend(func(p Sample) float64 { return float64(p.RSS - p.RSSFile) }),
		Disk:    h.Trend(func(p Sample) float64 { return float64(p.Disk.Total) }),
		Kafka:   h.Trend(func(p Sample) float64 { return float64(p.Disk.Kafka) }),
		TSDB:    h.Trend(func(p Sample) float64 { return float64(p.Disk.TSDB) }),
		Ruler:   h.Trend(func(p Sample) float64 { return float64(p.Disk.Ruler) }),
		P50:     h.Trend(func(p Sample) float64 { return ms(p.Answers.P50) }),
		P99:     h.Trend(func(p Sample) float64 { return ms(p.Answers.P99) }),
	}
	if len(h) > 0 {
		t.From = h[0].At
	}
	var heap Samples
	for _, p := range h {
		if p.Heap >= 0 {
			heap = append(heap, p)
		}
	}
	t.Heap = heap.Trend(func(p Sample) float64 { return float64(p.Heap) })
	if len(h) >= 2 {
		var xs, ys []float64
		for i := 1; i < len(h); i++ {
			xs = append(xs, h[i].At.Seconds())
			ys = append(ys, float64(h[i].Answers.Accepted)/(h[i].At-h[i-1].At).Seconds())
		}
		t.AcceptedPerSecond = Fit(xs, ys)
	}
	return t
}

// DiskPerSample is broker bytes on disk per accepted sample, in all and
// by topic, at one sample.
type DiskPerSample struct {
	At       time.Duration
	All      float64
	ByTopic  map[string]float64
	Accepted int64
}

// PerSample divides a sample's broker bytes by its accepted samples.
func PerSample(p Sample) DiskPerSample {
	d := DiskPerSample{At: p.At, ByTopic: map[string]float64{}, Accepted: p.AcceptedSamples}
	if p.AcceptedSamples <= 0 {
		return d
	}
	d.All = float64(p.Disk.Kafka) / float64(p.AcceptedSamples)
	for t, b := range p.Disk.Topics {
		d.ByTopic[t] = float64(b) / float64(p.AcceptedSamples)
	}
	return d
}

// Check is one goal of the issue.
type Check struct {
	Goal, Measured string
	Pass           bool
	// Skipped says why the goal was not measured.
	Skipped string
}

// Analysis is what the summary states.
type Analysis struct {
	Trends Trends
	// Disk is bytes per sample before retention deleted anything; End at
	// the end of the load (retention has deleted the oldest then, if the
	// run was longer than it).
	Disk, End     DiskPerSample
	DiskOK        bool
	P50, P99, Max time.Duration
	WorstP99      time.Duration
	WorstP99At    time.Duration
	// TmaflowRSS is the mean RSS over the last half; PrometheusRSS the
	// same of Prometheus (0: not run); PrometheusRSSFile its file-backed
	// part.
	TmaflowRSS, PrometheusRSS float64
	PrometheusRSSFile         float64
	TmaflowCores, BenchCores  float64
	PrometheusCores           float64
	Lost                      int64
	Checks                    []Check
}

// Analyse computes the summary of a report.
func Analyse(rep *Report) Analysis {
	cfg := rep.Config
	a := Analysis{Trends: LastHalfTrends(rep.Samples)}
	a.P50, a.P99, a.Max = rep.Latency.Quantile(0.50), rep.Latency.Quantile(0.99), rep.Latency.Max()
	for _, p := range rep.Samples {
		afterWarmup := p.At+cfg.SampleInterval/2 >= cfg.Warmup+cfg.SampleInterval
		if afterWarmup && p.Answers.P99 > a.WorstP99 {
			a.WorstP99, a.WorstP99At = p.Answers.P99, p.At
		}
	}
	if len(rep.Samples) > 0 {
		a.End = PerSample(rep.Samples[len(rep.Samples)-1])
		a.TmaflowRSS = a.Trends.RSS.Mean
		a.TmaflowCores = rep.Samples.Cores(cpuOf)
		a.BenchCores = rep.Samples.Cores(benchCPUOf)
	}
	if p, ok := rep.Samples.BeforeRetention(cfg.Retention); ok {
		a.Disk, a.DiskOK = PerSample(p), true
	}
	if pr := rep.Prometheus; pr != nil && len(pr.Samples) > 0 {
		h := pr.Samples.LastHalf()
		a.PrometheusRSS = h.Trend(func(p Sample) float64 { return float64(p.RSS) }).Mean
		a.PrometheusRSSFile = h.Trend(func(p Sample) float64 { return float64(p.RSSFile) }).Mean
		a.PrometheusCores = pr.Samples.Cores(cpuOf)
	}
	a.Lost = max(rep.Acked-rep.Stored, 0)

	g := cfg.Goals
	rss := a.Trends.RSS
	a.Checks = append(a.Checks, Check{
		Goal:     fmt.Sprintf("RSS slope over the last half < %g %% of RSS per 10 min", g.RSSSlopePercent),
		Measured: fmt.Sprintf("%+.2f %% (%+.1f MiB per 10 min on %.1f MiB)", rss.PercentPer10Min(), rss.Per10Min()/(1<<20), rss.Mean/(1<<20)),
		Pass:     rss.N >= 2 && rss.PercentPer10Min() < g.RSSSlopePercent,
	})
	c := Check{Goal: fmt.Sprintf("RSS ≤ %g× Prometheus's at the same samples/s", g.RSSOverPrometheus)}
	if a.PrometheusRSS > 0 {
		c.Measured = fmt.Sprintf("%.2f× (%.1f MiB vs %.1f MiB, means of the last halves)", a.TmaflowRSS/a.PrometheusRSS, mib(int64(a.TmaflowRSS)), mib(int64(a.PrometheusRSS)))
		c.Pass = a.TmaflowRSS <= g.RSSOverPrometheus*a.PrometheusRSS
	} else {
		c.Skipped = "Prometheus not run: " + rep.PrometheusSkipped
	}
	a.Checks = append(a.Checks, c)
	c = Check{Goal: fmt.Sprintf("≤ %g bytes per sample on disk across all topics", g.BytesPerSample)}
	if a.DiskOK && a.Disk.Accepted > 0 {
		c.Measured = fmt.Sprintf("%.1f B (kafka/ ÷ samples accepted at %.0fs, before retention)", a.Disk.All, a.Disk.At.Seconds())
		c.Pass = a.Disk.All <= g.BytesPerSample
	} else {
		c.Skipped = "no sample before retention"
	}
	a.Checks = append(a.Checks, c)
	a.Checks = append(a.Checks, Check{
		Goal:     fmt.Sprintf("ingest p99 ≤ %s", g.P99),
		Measured: fmt.Sprintf("%.1f ms over the run after the %s warm-up (worst 10 s window %.1f ms)", ms(a.P99), cfg.Warmup, ms(a.WorstP99)),
		Pass:     rep.Latency.Count() > 0 && a.P99 <= g.P99,
	})
	c = Check{Goal: "0 acked samples lost (stored in the TSDB ≥ acknowledged)"}
	if rep.StoredErr != nil {
		c.Skipped = "stored samples not counted: " + rep.StoredErr.Error()
	} else {
		c.Measured = fmt.Sprintf("%d lost: %d stored, %d acknowledged", a.Lost, rep.Stored, rep.Acked)
		c.Pass = a.Lost == 0
	}
	a.Checks = append(a.Checks, c)
	return a
}

// PrintSummary prints the analysis of rep.
func PrintSummary(out io.Writer, rep *Report) {
	a := Analyse(rep)
	cfg := rep.Config
	pf := func(format string, args ...any) { _, _ = fmt.Fprintf(out, format, args...) }
	var accepted, rejected int64
	for status, n := range rep.Statuses {
		if status/100 == 2 {
			accepted += n
		} else {
			rejected += n
		}
	}
	pf("\n== soak summary: %s at %.0f requests/s × %d = %.0f samples/s offered, retention %s ==\n",
		cfg.Duration, cfg.Rate, cfg.DataItems, cfg.SamplesPerSecond(), cfg.Retention)
	pf("requests: %d accepted (2xx), %d rejected; statuses: %s\n", accepted, rejected, statuses(rep.Statuses))
	pf("samples acknowledged: %d, series: %d\n", rep.Acked, rep.Series)
	pf("CPU: tmaflow %.2f cores, this bench process (load generator + sampling) %.2f cores\n", a.TmaflowCores, a.BenchCores)
	pf("ingest latency (accepted requests, from their scheduled send, after the %s warm-up): p50 %.1f ms, p99 %.1f ms, max %.1f ms; worst 10 s p99 after it %.1f ms at %.0fs\n",
		cfg.Warmup, ms(a.P50), ms(a.P99), ms(a.Max), ms(a.WorstP99), a.WorstP99At.Seconds())

	pf("\nslopes over the last half (from %.0fs; least squares):\n", a.Trends.From.Seconds())
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "series\tmean\tper 10 min\t% of mean per 10 min\t")
	row := func(name string, t Trend, unit string, scale float64) {
		if t.N == 0 {
			_, _ = fmt.Fprintf(tw, "%s\t-\t-\t-\t\n", name)
			return
		}
		_, _ = fmt.Fprintf(tw, "%s\t%.1f %s\t%+.2f %s\t%+.2f %%\t\n", name, t.Mean/scale, unit, t.Per10Min()/scale, unit, t.PercentPer10Min())
	}
	row("RSS", a.Trends.RSS, "MiB", 1<<20)
	row("  backed by files", a.Trends.RSSFile, "MiB", 1<<20)
	row("  anonymous", a.Trends.RSSAnon, "MiB", 1<<20)
	row("Go heap after GC", a.Trends.Heap, "MiB", 1<<20)
	row("data dir", a.Trends.Disk, "MiB", 1<<20)
	row("  kafka/", a.Trends.Kafka, "MiB", 1<<20)
	row("  tsdb/", a.Trends.TSDB, "MiB", 1<<20)
	row("  ruler/", a.Trends.Ruler, "MiB", 1<<20)
	row("ingest p50 (10 s)", a.Trends.P50, "ms", 1)
	row("ingest p99 (10 s)", a.Trends.P99, "ms", 1)
	row("accepted requests/s", a.Trends.AcceptedPerSecond, "/s", 1)
	_ = tw.Flush()

	if reached := cfg.Retention + cfg.RetentionCheck; a.Trends.From < reached {
		pf("note: the last half starts at %.0fs, before retention (%s, checked every %s) can have deleted anything: its slopes include filling up; run at least twice as long as the retention.\n",
			a.Trends.From.Seconds(), cfg.Retention, cfg.RetentionCheck)
	}
	pf("(the TSDB keeps samples for its own retention, longer than the run: tsdb/, and the file-backed RSS of its memory-mapped blocks, grow for as long as the run)\n")

	if a.DiskOK {
		printDisk(out, fmt.Sprintf("broker bytes on disk per accepted sample at %.0fs (before retention deleted anything)", a.Disk.At.Seconds()), a.Disk)
	}
	if !a.DiskOK || a.End.At != a.Disk.At {
		printDisk(out, fmt.Sprintf("at the end (%.0fs: kafka/ now ÷ all samples accepted; lower once retention deletes)", a.End.At.Seconds()), a.End)
	}

	switch {
	case rep.DrainErr != nil:
		pf("\nconsumers did not drain: %v\n", rep.DrainErr)
	case rep.StoredErr != nil:
		pf("\nstored samples not counted: %v\n", rep.StoredErr)
	}
	if rep.StoredErr == nil {
		pf("\nTSDB: %d samples of the load's series stored (sum of count_over_time over the run, query API), %d acknowledged: %d lost\n", rep.Stored, rep.Acked, a.Lost)
		if rep.Stored > rep.Acked {
			pf("(%d more stored than acknowledged: requests cancelled in flight when the load stopped, stored but never answered)\n", rep.Stored-rep.Acked)
		}
	}
	if rep.LogErr != nil {
		pf("tmaflow log: %v\n", rep.LogErr)
	} else {
		pf("tmaflow log: %d lines, %d warnings, %d errors\n", rep.Log.Lines, rep.Log.Warnings, rep.Log.Errors)
		for _, m := range rep.Log.Top(8) {
			pf("  %s\n", m)
		}
	}
	if pr := rep.Prometheus; pr != nil {
		pf("Prometheus (%s at the same samples/s): RSS %.1f MiB (mean of its last half; %.1f MiB backed by files), %.2f cores, %d samples acknowledged, %d requests failed",
			pr.Duration, mib(int64(a.PrometheusRSS)), mib(int64(a.PrometheusRSSFile)), a.PrometheusCores, pr.Sent, pr.Failed)
		if pr.FirstErr != nil {
			pf(" (first: %v)", pr.FirstErr)
		}
		pf("\n")
	} else {
		pf("Prometheus comparison: %s\n", rep.PrometheusSkipped)
	}
	if cfg.OutDir != "" {
		pf("logs, heap profile and data dirs kept in %s\n", cfg.OutDir)
	}
	if rep.HeapTop != "" {
		pf("\ntmaflow heap at the end of the load (after GC, inuse_space):\n%s", benchkit.Indent(rep.HeapTop))
	}
	pf("\n== goals (issue 19) ==\n")
	for _, c := range a.Checks {
		switch {
		case c.Skipped != "":
			pf("  [ -- ] %s: not measured: %s\n", c.Goal, c.Skipped)
		case c.Pass:
			pf("  [PASS] %s: %s\n", c.Goal, c.Measured)
		default:
			pf("  [FAIL] %s: %s\n", c.Goal, c.Measured)
		}
	}
}

func printDisk(out io.Writer, title string, d DiskPerSample) {
	_, _ = fmt.Fprintf(out, "\n%s: all topics %.1f B", title, d.All)
	for _, t := range slices.Sorted(maps.Keys(d.ByTopic)) {
		_, _ = fmt.Fprintf(out, ", %s %.1f B", t, d.ByTopic[t])
	}
	_, _ = fmt.Fprintln(out)
}

func statuses(m map[int]int64) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		name := fmt.Sprint(k)
		if k == 0 {
			name = "no answer"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, m[k]))
	}
	return strings.Join(parts, ", ")
}
