// Package soak is `make bench-soak`: the all-in-one tmaflow (-target=all,
// embedded broker, auth on) under a steady open-loop TMA load for a long
// run with a time-compressed retention, sampling every 10 s what must stay
// bounded when it runs for weeks: RSS, the Go heap after GC, the data
// dir's bytes (kafka/, tsdb/, ruler/ and each topic), ingest latency and
// answers. At the end it fits each series' slope over the last half of the
// run, counts the samples the TSDB stored against those acknowledged, and
// measures Debian's Prometheus remote-written the same series at the same
// samples/s for the RSS comparison.
//
// tmaflow runs as a child process built from services/tmaflow, so its RSS
// and CPU are its own; the load generator and the sampling run in this
// process, whose CPU is reported too (all share the machine's cores).
package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
	"github.com/tmaflow/tmaflow/tools/bench/internal/loadgen"
)

// Report is what a soak measured.
type Report struct {
	Config  Config
	Samples Samples
	// Latency is the run's accepted requests; Statuses every answer's
	// status (0: no answer).
	Latency  Histogram
	Statuses map[int]int64
	// Acked are the samples of 2xx answers; Stored the samples the TSDB
	// holds of the load's series, counted through the query API after the
	// consumers drained.
	Acked, Stored int64
	StoredErr     error
	DrainErr      error
	Series        int
	HeapTop       string
	// Log is what tmaflow logged at WARN and ERROR.
	Log        LogSummary
	LogErr     error
	Prometheus *PrometheusRun
	// PrometheusSkipped says why there is no Prometheus comparison.
	PrometheusSkipped string
}

// PrometheusRun is Prometheus remote-written the load's series.
type PrometheusRun struct {
	Duration time.Duration
	Samples  Samples // RSS and CPU only
	Sent     int64   // samples acknowledged
	Failed   int64
	FirstErr error
}

type soak struct {
	cfg    Config
	out    io.Writer
	dir    string
	data   string
	bin    string
	tf     *benchkit.Process
	addrs  addrs
	client *http.Client
	lags   *benchkit.LagReader
}

type addrs struct {
	broker, monitor, labeler, persister, ruler, debug string
}

// Run runs the soak, printing a line per sample and the summary.
func Run(ctx context.Context, cfg Config, out io.Writer) (rep Report, err error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	s := &soak{cfg: cfg, out: out, client: &http.Client{Timeout: 30 * time.Second}}
	rep.Config = cfg
	if s.dir = cfg.OutDir; s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "tmaflow-soak-"); err != nil {
			return rep, fmt.Errorf("temp dir: %w", err)
		}
		defer func() { err = errors.Join(err, os.RemoveAll(s.dir)) }()
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return rep, fmt.Errorf("out dir: %w", err)
	}
	s.data = filepath.Join(s.dir, "tmaflow-data")
	if s.bin, err = cfg.Tmaflow(ctx, s.dir, out); err != nil {
		return rep, err
	}
	if err := s.start(ctx); err != nil {
		return rep, err
	}
	defer func() {
		if s.tf != nil {
			err = errors.Join(err, s.tf.Stop(time.Minute))
		}
	}()
	s.printf("tmaflow pid %d: -target=all, data dir %s, retention %s (check every %s), monitor %s, query API %s, pprof %s\n",
		s.tf.PID(), s.data, cfg.Retention, cfg.RetentionCheck, s.addrs.monitor, s.addrs.persister, s.addrs.debug)
	s.printf("load: %.0f requests/s × %d observations = %.0f samples/s, open loop, %d connections, %d resources (%d series), for %s; %d CPUs\n\n",
		cfg.Rate, cfg.DataItems, cfg.SamplesPerSecond(), cfg.Concurrency, cfg.Resources, cfg.Resources*cfg.DataItems, cfg.Duration, runtime.NumCPU())

	sets, err := s.load(ctx, &rep)
	if err != nil {
		return rep, err
	}
	err = s.tf.Stop(time.Minute)
	s.tf = nil
	if err != nil {
		return rep, fmt.Errorf("stop tmaflow: %w", err)
	}
	rep.Log, rep.LogErr = summariseLogFile(filepath.Join(s.dir, "tmaflow.log"))
	switch d := min(cfg.PrometheusDuration, cfg.Duration); {
	case cfg.Prometheus == "" || d == 0:
		rep.PrometheusSkipped = "not asked for (-prometheus empty or -prometheus.duration=0)"
	case len(sets) == 0:
		rep.PrometheusSkipped = "tmaflow stored no series to remote-write"
	default:
		if _, err := os.Stat(cfg.Prometheus); err != nil {
			rep.PrometheusSkipped = fmt.Sprintf("no Prometheus binary: %v", err)
			break
		}
		if rep.Prometheus, err = s.prometheus(ctx, benchkit.GroupSeries(sets), d); err != nil {
			return rep, err
		}
	}
	PrintSummary(out, &rep)
	return rep, nil
}

func (s *soak) printf(format string, args ...any) { _, _ = fmt.Fprintf(s.out, format, args...) }

func (s *soak) api() benchkit.QueryAPI {
	return benchkit.QueryAPI{Client: s.client, URL: "http://" + s.addrs.persister, User: s.cfg.User, Password: s.cfg.Password}
}

// selector selects the load's series: those of its probe.
func (s *soak) selector() string { return fmt.Sprintf("{probe=%q}", s.cfg.User) }

func (s *soak) start(ctx context.Context) error {
	ports, err := benchkit.FreePorts(6)
	if err != nil {
		return err
	}
	s.addrs = addrs{broker: ports[0], monitor: ports[1], labeler: ports[2], persister: ports[3], ruler: ports[4], debug: ports[5]}
	reg, err := filepath.Abs(s.cfg.Registry)
	if err != nil {
		return fmt.Errorf("registry path: %w", err)
	}
	args := []string{
		"-target=all",
		"-data-dir=" + s.data,
		"-registry=" + reg,
		"-broker.listen-address=" + s.addrs.broker,
		"-log.level=info",
	}
	known, err := tmaflowFlags(ctx, s.bin)
	if err != nil {
		return err
	}
	compressed, unknown := Supported(s.cfg.compression(), known)
	s.printf("time-compressed retention: %s\n", strings.Join(compressed, " "))
	if len(unknown) > 0 {
		s.printf("not in this tmaflow (left out): %s\n", strings.Join(unknown, ", "))
	}
	args = append(args, compressed...)
	for name, addr := range map[string]string{
		"monitor": s.addrs.monitor, "labeler": s.addrs.labeler, "persister": s.addrs.persister,
		"ruler": s.addrs.ruler, "debug": s.addrs.debug,
	} {
		args = append(args, "-"+name+".listen-address="+addr)
	}
	if s.cfg.RulesDir != "" {
		rules, err := filepath.Abs(s.cfg.RulesDir)
		if err != nil {
			return fmt.Errorf("rules dir: %w", err)
		}
		args = append(args, "-ruler.rules.dir="+rules)
	}
	args = append(args, s.cfg.tmaflowArgs()...)
	if s.tf, err = benchkit.StartProcess("tmaflow", s.bin, args, filepath.Join(s.dir, "tmaflow.log")); err != nil {
		return err
	}
	for _, addr := range []string{s.addrs.monitor, s.addrs.labeler, s.addrs.persister, s.addrs.ruler} {
		if err := benchkit.WaitReady(ctx, s.tf, "http://"+addr+"/-/ready", 2*time.Minute); err != nil {
			return err
		}
	}
	s.lags = benchkit.NewLagReader(s.addrs.broker)
	return nil
}

// load runs the steady load, sampling, then drains the consumers and
// counts what the TSDB stored; it returns the load's series.
func (s *soak) load(ctx context.Context, rep *Report) ([]map[string]string, error) {
	from := time.Now().Add(-2 * time.Minute)
	cfg := s.cfg.SendConfig(s.cfg.Setup, s.addrs.monitor, s.cfg.Rate)
	if err := benchkit.SendFirst(ctx, cfg); err != nil {
		return nil, err
	}
	w := &Window{}
	if s.cfg.Warmup == 0 {
		w.EndWarmup()
	}
	cfg.Observe = w.Observe
	st := &benchkit.SendStats{}
	start := time.Now()
	stop := background(ctx, func(ctx context.Context) { benchkit.Send(ctx, cfg, st) })
	printHeader(s.out)
	err := s.sample(ctx, start, w, st, rep)
	stop()
	rep.Latency, rep.Statuses = w.Run()
	rep.Acked = (st.OK.Load() + 1) * int64(s.cfg.DataItems)
	if err != nil {
		return nil, err
	}
	if e := st.Err(); e != nil {
		s.printf("first failed request: %v\n", e)
	}
	if s.cfg.HeapProfile {
		rep.HeapTop = s.heapProfile(ctx)
	}
	s.printf("load stopped; waiting for the labeler and persister to commit everything (at most %s)\n", s.cfg.DrainTimeout)
	drainStart := time.Now()
	if _, rep.DrainErr = benchkit.Drain(ctx, s.lags, benchkit.PipelineConsumers, s.cfg.DrainTimeout); rep.DrainErr == nil {
		s.printf("drained in %.1fs\n", time.Since(drainStart).Seconds())
	}
	sets, err := s.api().Series(ctx, s.selector())
	if err != nil {
		return nil, fmt.Errorf("series of the load: %w", err)
	}
	rep.Series = len(sets)
	rep.Stored, rep.StoredErr = s.countStored(ctx, sets, from, time.Now().Add(time.Minute))
	return sets, ctx.Err()
}

// sample reads a Sample every interval until the duration is over.
func (s *soak) sample(ctx context.Context, start time.Time, w *Window, st *benchkit.SendStats, rep *Report) error {
	t := time.NewTicker(s.cfg.SampleInterval)
	defer t.Stop()
	var accepted, rejected int64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if time.Since(start) >= s.cfg.Warmup {
			w.EndWarmup()
		}
		p := Sample{Answers: w.Take(), Heap: -1}
		accepted, rejected = accepted+p.Answers.Accepted, rejected+p.Answers.Rejected
		p.Accepted, p.Rejected = accepted, rejected
		p.AcceptedSamples = (st.OK.Load() + 1) * int64(s.cfg.DataItems)
		p.BenchCPU = loadgen.ProcessCPU()
		u, err := s.tf.Usage()
		if err != nil {
			return err
		}
		p.RSS, p.RSSFile, p.CPU = u.RSS, u.RSSFile, u.CPU
		if p.Disk, err = MeasureDisk(s.data); err != nil {
			return err
		}
		if h, err := HeapAfterGC(ctx, s.client, s.addrs.debug); err != nil {
			s.printf("heap: %v\n", err)
		} else {
			p.Heap = h
		}
		lags, err := s.lags.Lags(ctx, benchkit.PipelineConsumers)
		for _, n := range lags {
			p.Lag += n
		}
		if err != nil {
			s.printf("lag: %v\n", err)
			p.Lag = -1
		}
		p.At = time.Since(start)
		rep.Samples = append(rep.Samples, p)
		printSample(s.out, rep.Samples, s.cfg.SampleInterval)
		if p.At >= s.cfg.Duration-s.cfg.SampleInterval/2 {
			return nil
		}
	}
}

// countStored counts the samples of the load's series in the TSDB from
// from to to: count_over_time over consecutive 1-minute windows (left
// open, so each sample counts once), summed. One query per metric name:
// count_over_time drops the name, and series of different names with the
// same other labels would collide in one query.
func (s *soak) countStored(ctx context.Context, sets []map[string]string, from, to time.Time) (int64, error) {
	const step = time.Minute
	n := int(to.Sub(from)/step) + 1
	var total float64
	for _, name := range MetricNames(sets) {
		sel := fmt.Sprintf("{__name__=%q,probe=%q}", name, s.cfg.User)
		expr := fmt.Sprintf("sum(count_over_time(%s[%s]))", sel, model.Duration(step))
		res, err := s.api().QueryRange(ctx, expr, from.Add(step), from.Add(time.Duration(n)*step), step)
		if err != nil {
			return 0, err
		}
		for _, r := range res {
			v, err := r.Sum()
			if err != nil {
				return 0, err
			}
			total += v
		}
	}
	return int64(total), nil
}

// MetricNames are the distinct names of label sets, sorted.
func MetricNames(sets []map[string]string) []string {
	seen := map[string]bool{}
	for _, s := range sets {
		seen[s["__name__"]] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

// heapProfile saves tmaflow's heap profile after a GC and returns the top
// of its in-use bytes ("" when it cannot).
func (s *soak) heapProfile(ctx context.Context) string {
	path := filepath.Join(s.dir, "tmaflow-heap.pprof")
	url := "http://" + s.addrs.debug + "/debug/pprof/heap?gc=1"
	if err := benchkit.Download(ctx, url, time.Minute, path); err != nil {
		s.printf("heap profile: %v\n", err)
		return ""
	}
	top, err := benchkit.PprofTop(ctx, s.cfg.GoBinary, s.bin, path, "-sample_index=inuse_space", "-nodecount=15")
	if err != nil {
		s.printf("heap profile: %v\n", err)
		return ""
	}
	return top
}

// prometheus remote-writes the load's series into a fresh Prometheus at
// the load's samples/s for d, sampling its RSS.
func (s *soak) prometheus(ctx context.Context, groups []benchkit.Group, d time.Duration) (_ *PrometheusRun, err error) {
	p, addr, err := benchkit.StartPrometheus(ctx, s.cfg.Prometheus, s.dir, "prometheus-soak", s.cfg.prometheusArgs()...)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, p.Stop(time.Minute)) }()
	perReq := max(s.cfg.PrometheusSamplesPerRequest/s.cfg.DataItems, 1)
	s.printf("\nPrometheus pid %d at %s: the same %d series remote-written at %.0f samples/s (%d writers, %d samples per request) for %s\n",
		p.PID(), addr, len(groups)*s.cfg.DataItems, s.cfg.SamplesPerSecond(), s.cfg.PrometheusWriters, perReq*s.cfg.DataItems, d)
	st := &benchkit.SendStats{}
	start := time.Now()
	wcfg := benchkit.WriteConfig{
		URL: "http://" + addr + "/api/v1/write", Groups: groups, Writers: s.cfg.PrometheusWriters,
		PerRequest: perReq, Rate: s.cfg.Rate,
	}
	stop := background(ctx, func(ctx context.Context) { benchkit.RemoteWrite(ctx, wcfg, st) })
	defer stop()
	run := &PrometheusRun{Duration: d}
	t := time.NewTicker(s.cfg.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		u, err := p.Usage()
		if err != nil {
			return nil, err
		}
		run.Samples = append(run.Samples, Sample{At: time.Since(start), RSS: u.RSS, RSSFile: u.RSSFile, CPU: u.CPU, AcceptedSamples: st.OK.Load() * int64(perReq*s.cfg.DataItems)})
		last := run.Samples[len(run.Samples)-1]
		s.printf("prometheus %6.0fs  RSS %6.1f MiB (files %5.1f)  %.2f cores  %.0f samples/s acknowledged\n", last.At.Seconds(), mib(last.RSS), mib(last.RSSFile),
			run.Samples[max(len(run.Samples)-2, 0):].Cores(cpuOf), float64(last.AcceptedSamples)/last.At.Seconds())
		if last.At >= d-s.cfg.SampleInterval/2 {
			break
		}
	}
	stop()
	run.Sent, run.Failed, run.FirstErr = st.OK.Load()*int64(perReq*s.cfg.DataItems), st.Failed.Load(), st.Err()
	return run, nil
}

func cpuOf(p Sample) time.Duration { return p.CPU }

// background runs f until stop is called, which cancels its context and
// waits for it to return; stop may be called again.
func background(ctx context.Context, f func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
