// Package rwbench is `make bench-remote-write`: Prometheus remote write
// 1.0 into tmaflow's monitor (POST /api/v1/write) → topic-samples →
// labeler → topic-metrics → persister's TSDB, against the same load
// remote-written into Debian's Prometheus (--web.enable-remote-write-receiver),
// in the same run on the same machine, for several request sizes.
//
// Both servers run as child processes, fresh (empty data dirs) for every
// request size, so their CPU is their own; the writers run in this
// process, closed loop (each sends its next request when the last one was
// answered). Stored samples are counted where they are stored, by the TSDB
// counter prometheus_tsdb_head_samples_appended_total that the persister
// and Prometheus both expose. tmaflow acknowledges a request once the
// broker has its records, before the labeler and persister stored them,
// so its rate is taken from the end of the warm-up until every sample it
// acknowledged is stored (the load stops at the end of the window, the
// back half then drains): the rate the whole pipeline keeps up, not the
// rate of the front half.
package rwbench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Config is one remote-write benchmark.
type Config struct {
	benchkit.Setup
	// Sizes are the samples per request measured, each a run of its own.
	Sizes []int
	// Instances × SeriesPerInstance series; a request takes one sample of
	// every series of whole instances (a writer owns every Writers-th
	// instance and cycles through them, so a request larger than a
	// writer's series holds some series more than once, at later times).
	Instances         int
	SeriesPerInstance int
	Writers           int
	Warmup, Duration  time.Duration
	SampleInterval    time.Duration
	DrainTimeout      time.Duration
	// OutDir keeps logs and data; empty: a temporary dir, removed.
	OutDir string
	// TmaflowArgs are extra flags for tmaflow.
	TmaflowArgs []string
}

// RegisterFlags registers the benchmark's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Setup.RegisterFlags(fs, "Prometheus binary receiving the same remote-write load")
	fs.Func("sizes", "Samples per remote-write request, comma-separated; each size is one run for tmaflow and one for Prometheus (default 100,1000,10000).", func(s string) error {
		sizes, err := parseSizes(s)
		c.Sizes = sizes
		return err
	})
	fs.IntVar(&c.Instances, "instances", 100, "Instances (the instance label: tmaflow's series group and record key).")
	fs.IntVar(&c.SeriesPerInstance, "series-per-instance", 100, "Series of each instance; a request holds whole instances, one sample of each series.")
	fs.IntVar(&c.Writers, "writers", 4, "Concurrent remote-write connections (Prometheus's queue shards).")
	fs.DurationVar(&c.Warmup, "warmup", 10*time.Second, "Unmeasured load before each measurement.")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "Measured window of each run.")
	fs.DurationVar(&c.SampleInterval, "sample-interval", time.Second, "How often the stored-samples counter is read while draining.")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 3*time.Minute, "Longest wait for tmaflow to store what it acknowledged.")
	fs.StringVar(&c.OutDir, "out-dir", "", "Keep logs and data here (empty: a temporary dir, removed).")
}

// DefaultSizes are the request sizes the issue asks for.
var DefaultSizes = []int{100, 1000, 10000}

func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("sizes: %q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.TmaflowSource == "" && c.TmaflowBinary == "":
		return errors.New("tmaflow.src or tmaflow.bin must be set")
	case c.Instances < 1 || c.SeriesPerInstance < 1 || c.Writers < 1:
		return errors.New("instances, series-per-instance and writers must be at least 1")
	case c.Duration <= 0 || c.Warmup < 0 || c.SampleInterval <= 0:
		return errors.New("duration and sample-interval must be positive, warmup not negative")
	}
	for _, n := range c.sizes() {
		if n%c.SeriesPerInstance != 0 {
			return fmt.Errorf("size %d: not a multiple of series-per-instance %d", n, c.SeriesPerInstance)
		}
	}
	return nil
}

func (c *Config) sizes() []int {
	if len(c.Sizes) == 0 {
		return DefaultSizes
	}
	return c.Sizes
}

const metricAppended = "prometheus_tsdb_head_samples_appended_total"

// Result is one system at one request size.
type Result struct {
	System   string
	Size     int
	Accepted float64 // samples/s answered 2xx in the window
	Stored   float64 // samples/s stored, drain included for tmaflow
	Drain    time.Duration
	CPU      time.Duration // of the server over the measured span
	Span     time.Duration
	Samples  float64 // stored over the span
	Failed   int64
	Err      error
}

// CPUPerSample is the server CPU per stored sample.
func (r Result) CPUPerSample() time.Duration {
	if r.Samples == 0 {
		return 0
	}
	return time.Duration(float64(r.CPU) / r.Samples)
}

// Report is every run.
type Report struct {
	Tmaflow, Prometheus []Result
}

// Run runs the benchmark, printing as it goes.
func Run(ctx context.Context, cfg Config, out io.Writer) (rep Report, err error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	dir := cfg.OutDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tmaflow-rwbench-"); err != nil {
			return Report{}, fmt.Errorf("temp dir: %w", err)
		}
		defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return Report{}, fmt.Errorf("out dir: %w", err)
	}
	bin, err := cfg.Tmaflow(ctx, dir, out)
	if err != nil {
		return Report{}, err
	}
	groups := Groups(cfg.Instances, cfg.SeriesPerInstance)
	fmt.Fprintf(out, "%d series (%d instances × %d), %d writers, closed loop, %s warm-up + %s measured per run; GOMAXPROCS %d, %d CPUs\n\n",
		cfg.Instances*cfg.SeriesPerInstance, cfg.Instances, cfg.SeriesPerInstance, cfg.Writers, cfg.Warmup, cfg.Duration, runtime.GOMAXPROCS(0), runtime.NumCPU())
	for _, size := range cfg.sizes() {
		r := runOne(ctx, cfg, dir, groups, size, tmaflowServer(cfg, bin))
		printResult(out, r)
		rep.Tmaflow = append(rep.Tmaflow, r)
		if cfg.Prometheus == "" {
			continue
		}
		r = runOne(ctx, cfg, dir, groups, size, prometheusServer(cfg))
		printResult(out, r)
		rep.Prometheus = append(rep.Prometheus, r)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	PrintReport(out, rep)
	return rep, nil
}

// Groups makes the series: instance i has n series
// rw_bench_value{instance="host-i", job="rwbench", series="k"}.
func Groups(instances, n int) []benchkit.Group {
	out := make([]benchkit.Group, instances)
	for i := range out {
		g := make(benchkit.Group, n)
		for k := range g {
			g[k] = []prompb.Label{
				{Name: "__name__", Value: "rw_bench_value"},
				{Name: "instance", Value: "host-" + strconv.Itoa(i)},
				{Name: "job", Value: "rwbench"},
				{Name: "series", Value: strconv.Itoa(k)},
			}
		}
		out[i] = g
	}
	return out
}

// server starts one system on a fresh data dir and says where it takes
// remote write and where its TSDB counter is.
type server struct {
	name  string
	start func(dir string) (p *benchkit.Process, writeURL, metricsURL string, err error)
	drain bool // acknowledges before storing: wait for the stored count
}

func tmaflowServer(cfg Config, bin string) server {
	return server{name: "tmaflow", drain: true, start: func(dir string) (*benchkit.Process, string, string, error) {
		ports, err := benchkit.FreePorts(4)
		if err != nil {
			return nil, "", "", err
		}
		reg, err := filepath.Abs(cfg.Registry)
		if err != nil {
			return nil, "", "", fmt.Errorf("registry path: %w", err)
		}
		// The anonymous tenant stands in for credentials: benchkit's
		// writers send none, as Prometheus's remote write without
		// basic_auth; a verified secret costs one cached SHA-256.
		args := append([]string{
			"-target=monitor,labeler,persister",
			"-data-dir=" + filepath.Join(dir, "data"),
			"-registry=" + reg,
			"-monitor.auth.anonymous-tenant=demo",
			"-broker.listen-address=" + ports[0],
			"-monitor.listen-address=" + ports[1],
			"-labeler.listen-address=" + ports[2],
			"-persister.listen-address=" + ports[3],
			"-log.level=warn",
		}, cfg.TmaflowArgs...)
		p, err := benchkit.StartProcess("tmaflow", bin, args, filepath.Join(dir, "tmaflow.log"))
		if err != nil {
			return nil, "", "", err
		}
		for _, a := range ports[1:] {
			if err := benchkit.WaitReady(context.Background(), p, "http://"+a+"/-/ready", time.Minute); err != nil {
				return nil, "", "", errors.Join(err, p.Stop(time.Minute))
			}
		}
		return p, "http://" + ports[1] + "/api/v1/write", "http://" + ports[3] + "/metrics", nil
	}}
}

func prometheusServer(cfg Config) server {
	return server{name: "prometheus", start: func(dir string) (*benchkit.Process, string, string, error) {
		ports, err := benchkit.FreePorts(1)
		if err != nil {
			return nil, "", "", err
		}
		cfgPath := filepath.Join(dir, "prometheus.yml")
		if err := os.WriteFile(cfgPath, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
			return nil, "", "", fmt.Errorf("prometheus config: %w", err)
		}
		p, err := benchkit.StartProcess("prometheus", cfg.Prometheus, []string{
			"--config.file=" + cfgPath,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + ports[0],
			"--web.enable-remote-write-receiver",
			"--log.level=warn",
		}, filepath.Join(dir, "prometheus.log"))
		if err != nil {
			return nil, "", "", err
		}
		if err := benchkit.WaitReady(context.Background(), p, "http://"+ports[0]+"/-/ready", time.Minute); err != nil {
			return nil, "", "", errors.Join(err, p.Stop(time.Minute))
		}
		return p, "http://" + ports[0] + "/api/v1/write", "http://" + ports[0] + "/metrics", nil
	}}
}

// runOne measures one system at one request size.
func runOne(ctx context.Context, cfg Config, base string, groups []benchkit.Group, size int, srv server) Result {
	r := Result{System: srv.name, Size: size}
	dir := filepath.Join(base, fmt.Sprintf("%s-%d", srv.name, size))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Err = err
		return r
	}
	p, writeURL, metricsURL, err := srv.start(dir)
	if err != nil {
		r.Err = err
		return r
	}
	defer func() { r.Err = errors.Join(r.Err, p.Stop(time.Minute)) }()
	r.Err = measure(ctx, cfg, groups, size, srv.drain, p, writeURL, metricsURL, &r)
	return r
}

// measure loads the server for warmup + duration and reads the stored
// counter and the CPU from the end of the warm-up to the end of the window
// (for a draining server: until it stored every acknowledged sample).
func measure(ctx context.Context, cfg Config, groups []benchkit.Group, size int, drain bool, p *benchkit.Process, writeURL, metricsURL string, r *Result) error {
	client := &http.Client{Timeout: 10 * time.Second}
	perReq := size / cfg.SeriesPerInstance
	st := &benchkit.SendStats{}
	loadCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		benchkit.RemoteWrite(loadCtx, benchkit.WriteConfig{URL: writeURL, Groups: groups, Writers: cfg.Writers, PerRequest: perReq}, st)
	}()
	read := func() (stored float64, cpu time.Duration, err error) {
		m, err := benchkit.Scrape(ctx, client, metricsURL, metricAppended)
		if err != nil {
			return 0, 0, err
		}
		u, err := p.Usage()
		return m[metricAppended], u.CPU, err
	}
	if !service.Sleep(ctx, cfg.Warmup) {
		return ctx.Err()
	}
	s0, c0, err := read()
	if err != nil {
		return err
	}
	ok0, t0 := st.OK.Load(), time.Now()
	if !service.Sleep(ctx, cfg.Duration) {
		return ctx.Err()
	}
	s1, c1, err := read()
	if err != nil {
		return err
	}
	ok1, t1 := st.OK.Load(), time.Now()
	stop()
	<-done
	r.Accepted = float64((ok1-ok0)*int64(size)) / t1.Sub(t0).Seconds()
	r.Failed = st.Failed.Load()
	if drain {
		// Every sample acknowledged since the start must be stored.
		want := float64(st.OK.Load() * int64(size))
		for s1 < want {
			if time.Since(t1) > cfg.DrainTimeout {
				return fmt.Errorf("stored %.0f of %.0f acknowledged samples %s after the load", s1, want, cfg.DrainTimeout)
			}
			if !service.Sleep(ctx, cfg.SampleInterval/4) {
				return ctx.Err()
			}
			if s1, c1, err = read(); err != nil {
				return err
			}
		}
		r.Drain = time.Since(t1)
		t1 = time.Now()
	}
	r.Span = t1.Sub(t0)
	r.Samples = s1 - s0
	r.Stored = r.Samples / r.Span.Seconds()
	r.CPU = c1 - c0
	if r.Failed > 0 {
		return fmt.Errorf("%d requests failed: %w", r.Failed, st.Err())
	}
	return nil
}

func printResult(out io.Writer, r Result) {
	if r.Err != nil && r.Samples == 0 {
		fmt.Fprintf(out, "%-10s %6d samples/request: %v\n", r.System, r.Size, r.Err)
		return
	}
	fmt.Fprintf(out, "%-10s %6d samples/request: accepted %9.0f/s, stored %9.0f/s (drain %s), %5.2f µs CPU per stored sample, %.2f cores\n",
		r.System, r.Size, r.Accepted, r.Stored, r.Drain.Round(time.Millisecond),
		float64(r.CPUPerSample())/float64(time.Microsecond), r.CPU.Seconds()/r.Span.Seconds())
	if r.Err != nil {
		fmt.Fprintf(out, "           %v\n", r.Err)
	}
}

// PrintReport prints the table of both systems by request size.
func PrintReport(out io.Writer, rep Report) {
	fmt.Fprintf(out, "\n== stored samples/s, remote write 1.0 end to end ==\n")
	fmt.Fprintf(out, "| samples/request | tmaflow stored/s | Prometheus stored/s | ratio | tmaflow CPU/sample | Prometheus CPU/sample |\n|---|---|---|---|---|---|\n")
	for i, t := range rep.Tmaflow {
		p := Result{}
		if i < len(rep.Prometheus) {
			p = rep.Prometheus[i]
		}
		ratio := "-"
		if p.Stored > 0 {
			ratio = fmt.Sprintf("%.2f", t.Stored/p.Stored)
		}
		fmt.Fprintf(out, "| %d | %.0f | %.0f | %s | %.2f µs | %.2f µs |\n", t.Size, t.Stored, p.Stored, ratio,
			float64(t.CPUPerSample())/float64(time.Microsecond), float64(p.CPUPerSample())/float64(time.Microsecond))
	}
}
