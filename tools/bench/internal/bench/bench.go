// Package bench is `make bench-ingest`: it starts tmaflow in-process on an
// embedded broker (or targets a running one), sweeps concurrency levels
// with the load generator, runs the same load against a no-op Go HTTP
// handler on the same machine (the floor), and measures latency at half of
// the best rate.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/services/tmaflow/app"
	"github.com/tmaflow/tmaflow/tools/bench/internal/loadgen"
)

// Config is one benchmark.
type Config struct {
	// URL of a running monitor; empty starts tmaflow in-process.
	URL            string
	User, Password string
	Concurrency    []int
	Duration       time.Duration
	Warmup         time.Duration
	// Floor also measures the no-op handler at every level.
	Floor bool
	// HalfRate measures latency at half the best rate of the sweep.
	HalfRate bool
	// Rate, when > 0, replaces the sweep's closed loop with this fixed
	// rate at every concurrency level.
	Rate float64
	// Messages: DataItems data items of ObsPerItem observations each.
	DataItems, ObsPerItem, Resources int
	CPUProfile                       string
	// TmaflowArgs are extra flags for the in-process tmaflow.
	TmaflowArgs []string
}

// RegisterFlags registers the bench flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "url", "", "POST to this monitor URL (http://host:port/monitor) instead of starting tmaflow in-process.")
	fs.StringVar(&c.User, "user", "", "HTTP Basic user (probe id or name) for -url.")
	fs.StringVar(&c.Password, "password", "", "HTTP Basic password for -url.")
	fs.Func("concurrency", "Comma-separated concurrency levels to sweep (default 16,64,256).", func(s string) error {
		levels, err := parseLevels(s)
		c.Concurrency = levels
		return err
	})
	c.Concurrency = []int{16, 64, 256}
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "Measured time per level and target.")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "Unmeasured load before each measurement.")
	fs.BoolVar(&c.Floor, "floor", true, "Also load a no-op Go HTTP handler on this machine, the floor.")
	fs.BoolVar(&c.HalfRate, "half-rate", true, "Then measure latency at half of the best rate.")
	fs.Float64Var(&c.Rate, "rate", 0, "Send this many requests/s (open loop) at each level instead of as many as possible.")
	fs.IntVar(&c.DataItems, "data-items", 20, "Data items per message.")
	fs.IntVar(&c.ObsPerItem, "observations-per-item", 1, "Observations per data item.")
	fs.IntVar(&c.Resources, "resources", 64, "Distinct resourceIds (record keys) across messages.")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "Write a CPU profile of the whole run (server and load generator) to this file; with -floor=false -half-rate=false it shows tmaflow alone.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case len(c.Concurrency) == 0:
		return errors.New("concurrency: no levels")
	case c.Duration <= 0:
		return fmt.Errorf("duration %s: must be positive", c.Duration)
	case c.DataItems < 1 || c.ObsPerItem < 1 || c.Resources < 1:
		return errors.New("data-items, observations-per-item and resources must be at least 1")
	case c.Rate < 0:
		return fmt.Errorf("rate %g: must not be negative", c.Rate)
	}
	return nil
}

func parseLevels(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("concurrency level %q: want a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// Row is one measured line of the report.
type Row struct {
	Target      string // "tmaflow" or "floor"
	Concurrency int
	Rate        float64 // scheduled rate, 0 for closed loop
	Result      loadgen.Result
}

// Report is everything one benchmark measured.
type Report struct {
	Rows []Row
	// Half is the run at half the best tmaflow rate (nil when not run).
	Half *Row
}

// Run runs the benchmark and prints the report to out as it goes.
func Run(ctx context.Context, cfg Config, out io.Writer) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	target := cfg.URL
	user, pass := cfg.User, cfg.Password
	probeID := 0
	if target == "" {
		tf, err := startTmaflow(cfg.TmaflowArgs)
		if err != nil {
			return Report{}, err
		}
		defer func() {
			if err := tf.stop(); err != nil {
				_, _ = fmt.Fprintln(out, "stop tmaflow:", err)
			}
		}()
		target, user, pass, probeID = tf.url, tf.user, tf.password, tf.probeID
		_, _ = fmt.Fprintf(out, "tmaflow in-process at %s, embedded broker %s, data dir %s\n", target, tf.kafka, tf.dir)
	}
	var floorURL string
	if cfg.Floor {
		fl, err := startFloor()
		if err != nil {
			return Report{}, err
		}
		defer fl.close()
		floorURL = fl.url
	}

	bodies := loadgen.Messages(4096, probeID, cfg.Resources, cfg.DataItems, cfg.ObsPerItem, time.Now())
	obs := cfg.DataItems * cfg.ObsPerItem
	_, _ = fmt.Fprintf(out, "%d-observation messages of %d bytes, %s per level after %s warm-up, GOMAXPROCS %d\n\n",
		obs, len(bodies[0]), cfg.Duration, cfg.Warmup, runtime.GOMAXPROCS(0))

	// One request first: it pays for the credential hash (bcrypt) that
	// later requests get from the registry's cache, and proves the setup.
	if err := postOnce(ctx, target, user, pass, bodies[0]); err != nil {
		return Report{}, err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "target\tconc\trate\treq/s\tobs/s\tp50\tp99\tmax\tfailed\tcpu/req\tratio\t")
	var rep Report
	load := func(url, u, p string, conc int, rate float64) (loadgen.Result, error) {
		return loadgen.Run(ctx, loadgen.Config{
			URL: url, Concurrency: conc, Duration: cfg.Duration, Warmup: cfg.Warmup, Rate: rate,
			Bodies: bodies, ObservationsPerBody: obs, User: u, Password: p,
		})
	}
	stopProfile, err := startProfile(cfg.CPUProfile)
	if err != nil {
		return Report{}, err
	}
	defer func() {
		if err := stopProfile(); err != nil {
			_, _ = fmt.Fprintln(out, err)
		}
	}()
	for _, conc := range cfg.Concurrency {
		res, err := load(target, user, pass, conc, cfg.Rate)
		if err != nil {
			return rep, err
		}
		row := Row{Target: "tmaflow", Concurrency: conc, Rate: cfg.Rate, Result: res}
		rep.Rows = append(rep.Rows, row)
		if floorURL == "" {
			printRow(tw, row, 0)
			continue
		}
		fres, err := load(floorURL, "", "", conc, cfg.Rate)
		if err != nil {
			return rep, err
		}
		frow := Row{Target: "floor", Concurrency: conc, Rate: cfg.Rate, Result: fres}
		rep.Rows = append(rep.Rows, frow)
		printRow(tw, row, 0)
		printRow(tw, frow, res.RequestsPerSecond()/fres.RequestsPerSecond())
	}
	if cfg.HalfRate && cfg.Rate == 0 {
		best := rep.best()
		if best.Concurrency == 0 {
			_ = tw.Flush()
			return rep, fmt.Errorf("no request to tmaflow succeeded: %v", rep.Rows[0].Result.FirstError)
		}
		rate := best.Result.RequestsPerSecond() / 2
		res, err := load(target, user, pass, best.Concurrency, rate)
		if err != nil {
			return rep, err
		}
		rep.Half = &Row{Target: "tmaflow", Concurrency: best.Concurrency, Rate: rate, Result: res}
		printRow(tw, *rep.Half, 0)
	}
	if err := tw.Flush(); err != nil {
		return rep, fmt.Errorf("write report: %w", err)
	}
	if rep.Half != nil {
		_, _ = fmt.Fprintf(out, "\nhalf of the best rate (%.0f req/s at concurrency %d): p99 %s\n",
			rep.Half.Rate, rep.Half.Concurrency, ms(rep.Half.Result.P99))
	}
	for _, r := range rep.Rows {
		if r.Result.FirstError != nil {
			_, _ = fmt.Fprintf(out, "%s at concurrency %d: %d failed, first: %v, statuses %v\n",
				r.Target, r.Concurrency, r.Result.Failures, r.Result.FirstError, r.Result.Statuses)
		}
	}
	return rep, nil
}

// best is the tmaflow row with the highest rate of 2xx answers; a zero
// Row when none succeeded.
func (r Report) best() Row {
	var best Row
	for _, row := range r.Rows {
		if row.Target == "tmaflow" && row.Result.Requests > 0 &&
			(best.Concurrency == 0 || row.Result.RequestsPerSecond() > best.Result.RequestsPerSecond()) {
			best = row
		}
	}
	return best
}

func printRow(w io.Writer, r Row, ratio float64) {
	rate, rt := "max", ""
	if r.Rate > 0 {
		rate = fmt.Sprintf("%.0f", r.Rate)
	}
	if ratio > 0 {
		rt = fmt.Sprintf("%.2f", ratio)
	}
	_, _ = fmt.Fprintf(w, "%s\t%d\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%d\t%dµs\t%s\t\n", r.Target, r.Concurrency, rate,
		r.Result.RequestsPerSecond(), r.Result.ObservationsPerSecond(),
		ms(r.Result.P50), ms(r.Result.P99), ms(r.Result.Max), r.Result.Failures,
		r.Result.CPUPerRequest().Microseconds(), rt)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// startProfile writes a CPU profile of everything until the returned
// stop is called.
func startProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create cpu profile %s: %w", path, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return nil, errors.Join(fmt.Errorf("start cpu profile: %w", err), f.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("write cpu profile %s: %w", path, err)
		}
		return nil
	}, nil
}

func postOnce(ctx context.Context, url, user, pass string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	answer, err := io.ReadAll(resp.Body)
	if err = errors.Join(err, resp.Body.Close()); err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("first request: status %d: %s", resp.StatusCode, answer)
	}
	return nil
}

type tmaflow struct {
	app            *app.App
	done           chan error
	url, kafka     string
	user, password string
	probeID        int
	dir            string
}

// startTmaflow runs tmaflow in-process on free ports with the embedded
// broker in a temporary data dir and authentication on, for a bench probe
// with a random secret.
func startTmaflow(extra []string) (*tmaflow, error) {
	dir, err := os.MkdirTemp("", "tmaflow-bench-")
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	secretBytes := make([]byte, 16)
	if _, err := rand.Read(secretBytes); err != nil {
		return nil, fmt.Errorf("bench secret: %w", err)
	}
	secret := hex.EncodeToString(secretBytes)
	hash, err := registry.HashSecret(secret, registry.AlgoBcrypt)
	if err != nil {
		return nil, fmt.Errorf("hash bench secret: %w", err)
	}
	regPath := filepath.Join(dir, "registry.yaml")
	regFile := fmt.Sprintf("probes:\n  - id: 7\n    name: bench\n    tenant: bench\n    secret_hash: %q\n", hash)
	if err := os.WriteFile(regPath, []byte(regFile), 0o600); err != nil {
		return nil, fmt.Errorf("write bench registry: %w", err)
	}
	cfg, err := app.ParseFlags(append([]string{
		// The ingest benchmark measures the monitor alone; the labeler
		// and persister would share its two cores.
		"-target=monitor",
		"-data-dir=" + dir,
		"-broker.listen-address=127.0.0.1:0",
		"-monitor.listen-address=127.0.0.1:0",
		"-monitor.auth.registry=" + regPath,
	}, extra...))
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The process runs with tmaflow's runtime settings, as its main sets
	// them (the floor, in the same process, shares them).
	cfg.Runtime.Apply(logger)
	a, err := app.New(cfg, app.Options{Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("start tmaflow: %w", err)
	}
	tf := &tmaflow{
		app: a, done: make(chan error, 1), url: "http://" + a.MonitorAddr() + "/monitor",
		kafka: strings.Join(a.KafkaBrokers(), ","), user: "bench", password: secret, probeID: 7, dir: dir,
	}
	go func() { tf.done <- a.Run() }()
	if err := waitReady(a); err != nil {
		return nil, errors.Join(err, tf.stop())
	}
	return tf, nil
}

func waitReady(a *app.App) error {
	deadline := time.Now().Add(30 * time.Second)
	for !a.Prober().IsReady() {
		if time.Now().After(deadline) {
			return errors.New("tmaflow not ready after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (t *tmaflow) stop() error {
	t.app.Shutdown()
	err := <-t.done
	return errors.Join(err, os.RemoveAll(t.dir))
}

type floor struct {
	srv *http.Server
	url string
}

// startFloor serves a handler that reads the body and answers 200: what
// any Go HTTP service costs before doing work.
func startFloor() (*floor, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("floor listen: %w", err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }() // ends with close
	return &floor{srv: srv, url: "http://" + ln.Addr().String() + "/monitor"}, nil
}

func (f *floor) close() { _ = f.srv.Close() }
