// Package pipebench is `make bench-pipeline`: sustained end-to-end ingest
// of TMA messages through monitor → topic-monitor → labeler →
// topic-metrics → persister on the all-in-one tmaflow, and the same
// samples remote-written straight into Debian's Prometheus.
//
// Both servers run as child processes built or installed on this machine,
// so their RSS and CPU are their own; the load generator runs in this
// process. Stored samples are counted where they are stored, by the TSDB
// counter prometheus_tsdb_head_samples_appended_total that tmaflow's
// persister and Prometheus both expose, never at the sender.
//
// tmaflow runs on its embedded Kafka broker, its embedded NATS JetStream
// server (-bus=nats), or each in turn (-bus=both), with the same load,
// request sizes and Prometheus runs, so the buses compare in one run.
//
// tmaflow is driven open loop at a fixed message rate, and a rate counts
// as sustained only if the consumer lag of the labeler and persister
// groups (end offsets minus committed offsets on Kafka; pending plus
// unacknowledged messages of the groups' consumers on NATS, read from the
// server) stays bounded and the TSDB stores what was sent. A short closed-loop run
// first calibrates the starting rate, then the rate is searched upwards
// and downwards for the highest sustained one. Prometheus is driven
// closed loop by several writers, as fast as it answers.
package pipebench

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
	"time"

	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Config is one pipeline benchmark.
type Config struct {
	benchkit.Setup
	benchkit.Load
	// Buses are the buses tmaflow runs on, one after the other, each
	// embedded (-bus=kafka, -bus=nats); Prometheus runs once after them.
	Buses []string
	// MessagesPerRequest > 1 posts JSON arrays of that many messages.
	MessagesPerRequest int
	// Rate, when > 0, is the one message rate tried; 0 searches.
	Rate           float64
	Attempts       int
	Calibrate      time.Duration
	Warmup         time.Duration
	Duration       time.Duration
	SampleInterval time.Duration
	DrainTimeout   time.Duration
	// Writers and SamplesPerRequest shape the remote-write load.
	Writers           int
	SamplesPerRequest int
	// SameShape adds a Prometheus run whose requests carry as many
	// samples as tmaflow's POSTs.
	SameShape bool
	// OutDir keeps logs, profiles and both TSDBs; empty: a temporary dir
	// removed at the end.
	OutDir string
	// TmaflowArgs are extra flags for tmaflow.
	TmaflowArgs []string
}

// RegisterFlags registers the benchmark's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Setup.RegisterFlags(fs, "Prometheus binary receiving the remote-write load")
	c.Load.RegisterFlags(fs, 32)
	c.Buses = []string{benchkit.BusKafka}
	fs.Func("bus", "Bus of tmaflow: kafka (the embedded kfake broker), nats (the embedded NATS JetStream server, sync_interval always), or both: each measured in turn in this run, with the same load and request sizes, then compared (default kafka).", func(s string) error {
		b, err := benchkit.ParseBuses(s)
		c.Buses = b
		return err
	})
	fs.IntVar(&c.MessagesPerRequest, "messages-per-request", 1, "TMA messages per POST (a JSON array when > 1, as TMA's Kubernetes probe sends); each is still one record of topic-monitor.")
	fs.Float64Var(&c.Rate, "rate", 0, "Messages/s to offer tmaflow (open loop); 0 calibrates and searches for the highest sustained rate.")
	fs.IntVar(&c.Attempts, "attempts", 4, "Rates tried by the search.")
	fs.DurationVar(&c.Calibrate, "calibrate", 15*time.Second, "Closed-loop run that picks the first rate of the search.")
	fs.DurationVar(&c.Warmup, "warmup", 10*time.Second, "Unmeasured load before each measurement.")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "Measured window of each rate and of Prometheus.")
	fs.DurationVar(&c.SampleInterval, "sample-interval", 2*time.Second, "How often stored samples, lag and RSS are read.")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 3*time.Minute, "Longest wait for the consumers to catch up between runs.")
	fs.IntVar(&c.Writers, "writers", 8, "Concurrent remote-write writers to Prometheus.")
	fs.IntVar(&c.SamplesPerRequest, "samples-per-request", 2000, "Samples per remote-write request (Prometheus's max_samples_per_send default); rounded to whole messages.")
	fs.BoolVar(&c.SameShape, "prometheus.same-shape", true, "Also remote-write to a fresh Prometheus in requests of as many samples as tmaflow's POSTs carry (data-items × messages-per-request): the like-for-like comparison.")
	fs.StringVar(&c.OutDir, "out-dir", "", "Keep logs, CPU profiles and data here (empty: a temporary dir, removed).")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.TmaflowSource == "" && c.TmaflowBinary == "":
		return errors.New("tmaflow.src or tmaflow.bin must be set")
	case c.Resources < 1 || c.DataItems < 1 || c.Concurrency < 1 || c.MessagesPerRequest < 1:
		return errors.New("resources, data-items, messages-per-request and concurrency must be at least 1")
	case c.Rate < 0:
		return fmt.Errorf("rate %g: must not be negative", c.Rate)
	case c.Attempts < 1:
		return fmt.Errorf("attempts %d: must be at least 1", c.Attempts)
	case c.Duration < 4*c.SampleInterval || c.SampleInterval <= 0:
		return fmt.Errorf("duration %s: want at least four sample intervals (%s)", c.Duration, c.SampleInterval)
	case c.Calibrate <= 0 && c.Rate == 0:
		return errors.New("calibrate must be positive unless rate is given")
	case c.Warmup < 0:
		return fmt.Errorf("warmup %s: must not be negative", c.Warmup)
	case c.Writers < 1 || c.SamplesPerRequest < 1:
		return errors.New("writers and samples-per-request must be at least 1")
	case len(c.Buses) == 0:
		return errors.New("bus: none given")
	}
	return nil
}

// Consumer groups of the all-in-one's defaults.
var consumers = benchkit.PipelineConsumers

const (
	metricAppended = "prometheus_tsdb_head_samples_appended_total"
	metricRejected = "tmaflow_persister_rejected_samples_total"
	// metricHandler is the batch consumers' time per batch: batches are
	// handled one after the other, so it bounds each consumer's rate.
	metricHandler = "tmaflow_bus_batch_duration_seconds"
)

// Report is what the benchmark measured of tmaflow on one bus, and of
// Prometheus (the same measurements in every Report of a run).
type Report struct {
	// Bus is the bus tmaflow ran on (benchkit.BusKafka when empty).
	Bus         string
	Calibration *Measurement
	// Drain is the back half alone: labeler and persister catching up
	// after the calibration, with no ingest.
	DrainSamplesPerSecond float64
	DrainLag              int64
	Attempts              []*Measurement
	Best                  *Measurement // highest sustained attempt; nil if none
	Profile               *benchkit.ProfileSummary
	Prometheus            *Measurement // remote write in samples-per-request requests
	// PrometheusSameShape is remote write in requests of tmaflow's POST
	// size; nil if not run or the same as Prometheus.
	PrometheusSameShape *Measurement
	Series              int

	profiled *Measurement // the run Profile is of
}

// busKind is the bus tmaflow ran on.
func (r Report) busKind() string {
	if r.Bus == "" {
		return benchkit.BusKafka
	}
	return r.Bus
}

// Ratio is tmaflow's sustained stored rate over Prometheus's.
func (r Report) Ratio() float64 { return r.ratioTo(r.Prometheus) }

// RatioSameShape is tmaflow's sustained stored rate over Prometheus's
// from requests of the same size.
func (r Report) RatioSameShape() float64 { return r.ratioTo(r.PrometheusSameShape) }

// prometheusRuns is the Prometheus measurements that ran, in run order.
func (r Report) prometheusRuns() []*Measurement {
	var out []*Measurement
	for _, p := range []*Measurement{r.Prometheus, r.PrometheusSameShape} {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

func (r Report) ratioTo(p *Measurement) float64 {
	if r.Best == nil || p == nil || p.Stored() == 0 {
		return 0
	}
	return r.Best.Stored() / p.Stored()
}

// bench is the state of one Run.
type bench struct {
	cfg    Config
	out    io.Writer
	dir    string
	bin    string
	client *http.Client

	// The tmaflow of the bus being measured.
	bus       benchkit.Bus
	tf        *benchkit.Process
	addrs     tmaflowAddrs
	lags      benchkit.LagSource
	byService []benchkit.Part

	// timelinePrinted are the Prometheus runs whose timeline the report
	// of an earlier bus printed.
	timelinePrinted map[*Measurement]bool
}

type tmaflowAddrs struct {
	monitor, labeler, persister, debug string
}

// Run runs the benchmark, printing as it goes: tmaflow on each bus in
// turn, then Prometheus with the series tmaflow stored. It returns one
// Report per bus, in the order of Config.Buses.
func Run(ctx context.Context, cfg Config, out io.Writer) (reps []Report, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, out: out, client: &http.Client{Timeout: 10 * time.Second}, timelinePrinted: map[*Measurement]bool{}}
	if b.dir = cfg.OutDir; b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "tmaflow-pipebench-"); err != nil {
			return nil, fmt.Errorf("temp dir: %w", err)
		}
		defer func() { err = errors.Join(err, os.RemoveAll(b.dir)) }()
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return nil, fmt.Errorf("out dir: %w", err)
	}
	if b.bin, err = cfg.Tmaflow(ctx, b.dir, out); err != nil {
		return nil, err
	}
	var sets []map[string]string
	for _, kind := range cfg.Buses {
		rep, s, err := b.tmaflowRun(ctx, kind)
		reps = append(reps, rep)
		if err != nil {
			return reps, fmt.Errorf("tmaflow on %s: %w", kind, err)
		}
		if sets == nil {
			sets = s
		} else if len(s) != len(sets) {
			b.printf("note: tmaflow on %s stored %d series, on %s %d\n", kind, len(s), cfg.Buses[0], len(sets))
		}
	}
	if cfg.Prometheus != "" {
		groups := benchkit.GroupSeries(sets)
		perReq := max(cfg.SamplesPerRequest/cfg.DataItems, 1)
		prom, err := b.prometheusPhase(ctx, groups, perReq)
		if err != nil {
			return reps, err
		}
		var same *Measurement
		if n := cfg.MessagesPerRequest; cfg.SameShape && n != perReq {
			if same, err = b.prometheusPhase(ctx, groups, n); err != nil {
				return reps, err
			}
		}
		for i := range reps {
			reps[i].Prometheus, reps[i].PrometheusSameShape = prom, same
		}
	}
	for _, rep := range reps {
		b.printReport(rep)
	}
	if len(reps) > 1 {
		b.printBuses(reps)
	}
	return reps, nil
}

// tmaflowRun measures tmaflow on bus kind: it starts it, searches the
// highest sustained rate, lists the series stored and stops it.
func (b *bench) tmaflowRun(ctx context.Context, kind string) (rep Report, sets []map[string]string, err error) {
	rep.Bus = kind
	defer func() {
		if b.tf != nil {
			err = errors.Join(err, b.tf.Stop(time.Minute))
			b.tf = nil
		}
		if b.lags != nil {
			err = errors.Join(err, b.lags.Close())
			b.lags = nil
		}
	}()
	if err := b.startTmaflow(ctx, kind); err != nil {
		return rep, nil, err
	}
	b.printf("\n== tmaflow on %s ==\n", b.bus.Title())
	b.printf("tmaflow pid %d: monitor %s, persister %s, bus %s, GOMAXPROCS of this process %d, %d CPUs\n",
		b.tf.PID(), b.addrs.monitor, b.addrs.persister, b.bus.URL(), runtime.GOMAXPROCS(0), runtime.NumCPU())
	b.printf("bus durability: %s\n", b.bus.Durability(b.cfg.TmaflowArgs))
	b.printf("%d-observation messages, %d per request, %d resources (%d series), %d connections, %s warm-up + %s measured per rate\n\n",
		b.cfg.DataItems, b.cfg.MessagesPerRequest, b.cfg.Resources, b.cfg.Resources*b.cfg.DataItems, b.cfg.Concurrency, b.cfg.Warmup, b.cfg.Duration)
	if err := b.tmaflowPhase(ctx, &rep); err != nil {
		return rep, nil, err
	}
	if sets, err = b.series(ctx); err != nil {
		return rep, nil, err
	}
	rep.Series = len(sets)
	err = b.tf.Stop(time.Minute)
	b.tf = nil
	if err != nil {
		return rep, nil, fmt.Errorf("stop tmaflow: %w", err)
	}
	return rep, sets, nil
}

func (b *bench) printf(format string, args ...any) { _, _ = fmt.Fprintf(b.out, format, args...) }

// startTmaflow starts tmaflow on the embedded broker or server of bus
// kind, with a data dir of its own.
func (b *bench) startTmaflow(ctx context.Context, kind string) error {
	ports, err := benchkit.FreePorts(5)
	if err != nil {
		return err
	}
	b.bus = benchkit.Bus{Kind: kind, Addr: ports[0]}
	b.addrs = tmaflowAddrs{monitor: ports[1], labeler: ports[2], persister: ports[3], debug: ports[4]}
	b.byService = byService(kind)
	reg, err := filepath.Abs(b.cfg.Registry)
	if err != nil {
		return fmt.Errorf("registry path: %w", err)
	}
	args := append(append([]string{
		"-target=monitor,labeler,persister",
		"-data-dir=" + filepath.Join(b.dir, "tmaflow-"+kind+"-data"),
		"-registry=" + reg,
	}, b.bus.Args()...),
		"-monitor.listen-address="+b.addrs.monitor,
		"-labeler.listen-address="+b.addrs.labeler,
		"-persister.listen-address="+b.addrs.persister,
		"-debug.listen-address="+b.addrs.debug,
		"-log.level=warn",
	)
	args = append(args, b.cfg.TmaflowArgs...)
	if b.tf, err = benchkit.StartProcess("tmaflow", b.bin, args, filepath.Join(b.dir, "tmaflow-"+kind+".log")); err != nil {
		return err
	}
	for _, addr := range []string{b.addrs.monitor, b.addrs.labeler, b.addrs.persister} {
		if err := benchkit.WaitReady(ctx, b.tf, "http://"+addr+"/-/ready", time.Minute); err != nil {
			return err
		}
	}
	b.lags, err = b.bus.Lags()
	return err
}

func (b *bench) sendConfig(rate float64) benchkit.SendConfig {
	cfg := b.cfg.SendConfig(b.cfg.Setup, b.addrs.monitor, rate)
	cfg.Batch = b.cfg.MessagesPerRequest
	return cfg
}

// tmaflowPhase calibrates, drains and searches the highest sustained rate.
func (b *bench) tmaflowPhase(ctx context.Context, rep *Report) error {
	st := &benchkit.SendStats{}
	if err := benchkit.SendFirst(ctx, b.sendConfig(0)); err != nil {
		return err
	}
	rate := b.cfg.Rate
	if rate == 0 {
		b.printf("calibrating: closed loop for %s\n", b.cfg.Calibrate)
		cal, err := b.measure(ctx, "calibration", 0, b.cfg.Calibrate/3, b.cfg.Calibrate-b.cfg.Calibrate/3, st)
		if err != nil {
			return err
		}
		rep.Calibration = cal
		b.printRun(cal)
		d, err := b.drain(ctx)
		if err != nil {
			return err
		}
		rep.DrainLag = d.lag
		if d.took < minDrainForRate {
			// The lag read from the brokers includes offsets done but not
			// yet committed: a short drain appends too little to be a rate.
			b.printf("drained %d records of lag in %.1fs (too short to rate the labeler + persister alone)\n\n", d.lag, d.took.Seconds())
		} else {
			rep.DrainSamplesPerSecond = d.rate
			b.printf("drained %d records of lag in %.1fs: labeler + persister alone store %.0f samples/s\n\n", d.lag, d.took.Seconds(), d.rate)
		}
		rate = max(cal.Stored()/float64(b.cfg.DataItems), 1)
	}
	var lo, hi float64 // highest sustained and lowest failed message rate
	for i := range b.cfg.Attempts {
		st := &benchkit.SendStats{}
		r, err := b.measure(ctx, fmt.Sprintf("rate %d", i+1), rate, b.cfg.Warmup, b.cfg.Duration, st)
		if err != nil {
			return err
		}
		rep.Attempts = append(rep.Attempts, r)
		b.printRun(r)
		if r.Sustained() {
			if rep.Best == nil || r.Stored() > rep.Best.Stored() {
				rep.Best = r
			}
			lo = max(lo, rate)
		} else {
			hi = rate
			if hi < lo {
				lo = 0 // noise: the lower rate was lucky; search below again
			}
		}
		if i == b.cfg.Attempts-1 || b.cfg.Rate > 0 {
			break
		}
		if _, err := b.drain(ctx); err != nil {
			return err
		}
		switch {
		case hi == 0:
			rate *= 1.25
		case lo == 0:
			rate = min(r.Stored()/float64(b.cfg.DataItems)*0.95, rate*0.8)
		default:
			if hi/lo < 1.05 {
				return b.profileBest(ctx, rep)
			}
			rate = (lo + hi) / 2
		}
	}
	return b.profileBest(ctx, rep)
}

// profileBest summarises the CPU profile taken during the best attempt
// (the last one when none was sustained).
func (b *bench) profileBest(ctx context.Context, rep *Report) error {
	r := rep.Best
	if r == nil && len(rep.Attempts) > 0 {
		r = rep.Attempts[len(rep.Attempts)-1]
	}
	if r == nil || r.profile == "" {
		return nil
	}
	s, err := benchkit.Summarise(ctx, b.cfg.GoBinary, b.bin, r.profile, r.profileWall, b.byService, benchkit.ByWork)
	if err != nil {
		b.printf("profile summary: %v\n", err)
		return nil
	}
	s.Run = r.Name + " on " + b.bus.Kind
	rep.Profile, rep.profiled = &s, r
	return nil
}

// measure runs one load (rate 0: closed loop) for warmup + window while
// sampling, and a CPU profile of tmaflow over the window.
func (b *bench) measure(ctx context.Context, name string, rate float64, warmup, window time.Duration, st *benchkit.SendStats) (*Measurement, error) {
	r := &Measurement{Name: name, Offered: rate * float64(b.cfg.DataItems), DataItems: b.cfg.DataItems, Warmup: warmup}
	loadCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		benchkit.Send(loadCtx, b.sendConfig(rate), st)
	}()
	var profErr chan error
	if rate > 0 && b.addrs.debug != "" {
		profErr = make(chan error, 1)
		r.profile = filepath.Join(b.dir, fmt.Sprintf("tmaflow-%s-%s.pprof", b.bus.Kind, sanitize(name)))
		r.profileWall = window - b.cfg.SampleInterval
		go func() {
			if !service.Sleep(ctx, warmup+b.cfg.SampleInterval/2) {
				profErr <- ctx.Err()
				return
			}
			profErr <- benchkit.FetchProfile(ctx, b.addrs.debug, r.profileWall, r.profile)
		}()
	}
	err := b.sample(ctx, r, warmup+window, func(p *Point) error {
		p.Sent = st.OK.Load() * int64(b.cfg.DataItems)
		p.Failed = st.Failed.Load()
		m, err := benchkit.Scrape(ctx, b.client, "http://"+b.addrs.persister+"/metrics", metricAppended, metricRejected, metricHandler)
		if err != nil {
			return err
		}
		p.Stored, p.Rejected = m[metricAppended], m[metricRejected]
		lm, err := benchkit.Scrape(ctx, b.client, "http://"+b.addrs.labeler+"/metrics", metricHandler)
		if err != nil {
			return err
		}
		// In the order of consumers.
		p.Handled = []handled{
			{lm[metricHandler+"_sum"], lm[metricHandler+"_count"]},
			{m[metricHandler+"_sum"], m[metricHandler+"_count"]},
		}
		p.Lags, err = b.lags.Lags(ctx, consumers)
		if err != nil {
			return err
		}
		u, err := b.tf.Usage()
		p.RSS, p.CPU = u.RSS, u.CPU
		return err
	})
	stop()
	<-done
	if profErr != nil {
		if perr := <-profErr; perr != nil {
			b.printf("%s: %v\n", name, perr)
			r.profile = ""
		}
	}
	r.FirstError = st.Err()
	return r, err
}

// sample reads a Point every sample interval for d, the first at once.
func (b *bench) sample(ctx context.Context, r *Measurement, d time.Duration, read func(*Point) error) error {
	start := time.Now()
	t := time.NewTicker(b.cfg.SampleInterval)
	defer t.Stop()
	for {
		p := Point{At: time.Since(start)}
		if err := read(&p); err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		p.At = time.Since(start)
		r.Points = append(r.Points, p)
		if p.At >= d {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// minDrainForRate is the shortest drain whose appended samples make a
// back-half rate.
const minDrainForRate = 5 * time.Second

type drained struct {
	lag  int64
	took time.Duration
	rate float64
}

// drain waits until both consumer groups committed everything.
func (b *bench) drain(ctx context.Context) (drained, error) {
	start := time.Now()
	m0, err := benchkit.Scrape(ctx, b.client, "http://"+b.addrs.persister+"/metrics", metricAppended)
	if err != nil {
		return drained{}, err
	}
	first, err := benchkit.Drain(ctx, b.lags, consumers, b.cfg.DrainTimeout)
	if err != nil {
		return drained{}, err
	}
	took := time.Since(start)
	m1, err := benchkit.Scrape(ctx, b.client, "http://"+b.addrs.persister+"/metrics", metricAppended)
	if err != nil {
		return drained{}, err
	}
	return drained{lag: first, took: took, rate: (m1[metricAppended] - m0[metricAppended]) / took.Seconds()}, nil
}

// series lists what tmaflow stored, through its query API as the probe.
func (b *bench) series(ctx context.Context) ([]map[string]string, error) {
	api := benchkit.QueryAPI{Client: b.client, URL: "http://" + b.addrs.persister, User: b.cfg.User, Password: b.cfg.Password}
	return api.Series(ctx, `{__name__=~".+"}`)
}

// prometheusPhase starts a Prometheus on a fresh data dir and
// remote-writes the series for warmup + duration, perReq messages' worth
// of samples per request.
func (b *bench) prometheusPhase(ctx context.Context, groups []benchkit.Group, perReq int) (_ *Measurement, err error) {
	if len(groups) == 0 {
		return nil, errors.New("no series to remote-write")
	}
	perRequest := perReq * b.cfg.DataItems
	name := fmt.Sprintf("prometheus-%d", perRequest)
	p, addr, err := benchkit.StartPrometheus(ctx, b.cfg.Prometheus, b.dir, name)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, p.Stop(time.Minute)) }()
	b.printf("Prometheus pid %d at %s: %d writers, %d samples per request, %d series\n",
		p.PID(), addr, b.cfg.Writers, perRequest, len(groups)*b.cfg.DataItems)
	st := &benchkit.SendStats{}
	r := &Measurement{Name: name, DataItems: b.cfg.DataItems, Warmup: b.cfg.Warmup}
	loadCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		benchkit.RemoteWrite(loadCtx, benchkit.WriteConfig{URL: "http://" + addr + "/api/v1/write", Groups: groups, Writers: b.cfg.Writers, PerRequest: perReq}, st)
	}()
	err = b.sample(ctx, r, b.cfg.Warmup+b.cfg.Duration, func(pt *Point) error {
		pt.Sent = st.OK.Load() * int64(perReq*b.cfg.DataItems)
		pt.Failed = st.Failed.Load()
		m, err := benchkit.Scrape(ctx, b.client, "http://"+addr+"/metrics", metricAppended)
		if err != nil {
			return err
		}
		pt.Stored = m[metricAppended]
		u, err := p.Usage()
		pt.RSS, pt.CPU = u.RSS, u.CPU
		return err
	})
	stop()
	<-done
	r.FirstError = st.Err()
	if err != nil {
		return nil, err
	}
	b.printRun(r)
	return r, nil
}

func sanitize(s string) string {
	out := []byte(s)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			out[i] = '-'
		}
	}
	return string(out)
}
