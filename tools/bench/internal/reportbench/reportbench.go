// Package reportbench measures a report run: it fills a temporary TSDB,
// serves the Prometheus query API over it, and runs the reporter's
// Generate, Render and Store in a child process, whose wall time and peak
// RSS are the figures (the TSDB and the query engine stay in the parent,
// as the persister does in production).
package reportbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/tmaflow/tmaflow/services/reporter/reporter"
	"github.com/tmaflow/tmaflow/services/reporter/reporttest"
)

// Config configures the benchmark.
type Config struct {
	Series int
	Days   int
	Charts int
	// Horizon and Season of the charts' forecasts.
	Horizon, Season string
	// ChildURL and ChildDir make the process the child: the report run
	// against the query API at ChildURL, definitions and output in
	// ChildDir.
	ChildURL, ChildDir string
	// Out, when set, keeps the generated report there.
	Out string
	// Args are the arguments after "--" (unused).
	Args []string
}

// RegisterFlags registers the benchmark's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.Series, "series", 50, "Series of the report, at 1-minute resolution.")
	fs.IntVar(&c.Days, "days", 30, "Length of the report's period in days.")
	fs.IntVar(&c.Charts, "charts", 5, "Charts, each of series/charts series with a forecast.")
	fs.StringVar(&c.Horizon, "forecast.horizon", "3d", "Forecast horizon of every chart series.")
	fs.StringVar(&c.Season, "forecast.season", "1d", "Season of the forecasts.")
	fs.StringVar(&c.Out, "out", "", "Directory to keep the generated report in (reports/bench/month/…); empty: a temporary one, removed.")
	fs.StringVar(&c.ChildURL, "child.url", "", "Internal: run the report against this query API.")
	fs.StringVar(&c.ChildDir, "child.dir", "", "Internal: directory of the child's definitions and output.")
}

// Result is what the benchmark measured.
type Result struct {
	Samples     int           `json:"samples"`
	Fill        time.Duration `json:"fill"`
	Wall        time.Duration `json:"wall"`
	PeakRSS     int64         `json:"peak_rss_bytes"`
	Child       ChildResult   `json:"child"`
	WallGoal    time.Duration `json:"wall_goal"`
	PeakRSSGoal int64         `json:"peak_rss_goal_bytes"`
}

// ChildResult is what the child reports about its run.
type ChildResult struct {
	Generate  time.Duration `json:"generate"`
	Render    time.Duration `json:"render"`
	Save      time.Duration `json:"save"`
	Forecasts int           `json:"forecasts"`
	HTMLBytes int           `json:"html_bytes"`
	DocBytes  int           `json:"document_bytes"`
	// MeanMAPE are the charts' mean backtest errors, Holt–Winters and
	// the linear baseline.
	MeanMAPE, MeanLinearMAPE float64
}

// end is the end of the benchmark's period: fixed, so every run sees the
// same data.
var end = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// Run runs the benchmark (or, with ChildURL, the child) and prints its
// result.
func Run(ctx context.Context, cfg Config, w io.Writer) (Result, error) {
	if cfg.Series < 1 || cfg.Days < 1 || cfg.Charts < 1 || cfg.Charts > cfg.Series {
		return Result{}, errors.New("want series >= charts >= 1 and days >= 1")
	}
	if cfg.ChildURL != "" {
		cr, err := child(ctx, cfg)
		if err != nil {
			return Result{}, err
		}
		return Result{Child: cr}, json.NewEncoder(w).Encode(cr)
	}
	dir, err := os.MkdirTemp("", "tmareport")
	if err != nil {
		return Result{}, fmt.Errorf("temp dir: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }() // best effort: a temporary directory
	res := Result{WallGoal: 5 * time.Second, PeakRSSGoal: 200 << 20}
	db, err := tsdb.Open(filepath.Join(dir, "tsdb"), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return Result{}, fmt.Errorf("open tsdb: %w", err)
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	db.DisableCompactions()
	began := time.Now()
	if res.Samples, err = fill(ctx, db, cfg); err != nil {
		return Result{}, err
	}
	res.Fill = time.Since(began)
	if err := writeDefinition(dir, cfg); err != nil {
		return Result{}, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: reporttest.NewAPI(db, ""), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }() // ends with Close below
	defer func() { err = errors.Join(err, srv.Close()) }()

	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, os.Args[0], "-child.url=http://"+ln.Addr().String(), "-child.dir="+dir,
		fmt.Sprintf("-series=%d", cfg.Series), fmt.Sprintf("-days=%d", cfg.Days), fmt.Sprintf("-charts=%d", cfg.Charts),
		"-forecast.horizon="+cfg.Horizon, "-forecast.season="+cfg.Season, "-out="+cfg.Out)
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	began = time.Now()
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("report child: %w", err)
	}
	res.Wall = time.Since(began)
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.PeakRSS = ru.Maxrss << 10 // KiB on Linux
	}
	if err := json.Unmarshal(out.Bytes(), &res.Child); err != nil {
		return Result{}, fmt.Errorf("child result %q: %w", out.String(), err)
	}
	fmt.Fprintf(w, "report of %d series over %d days at 1-minute resolution (%d samples, filled in %s), a table and %d charts with forecasts:\n",
		cfg.Series, cfg.Days, res.Samples, res.Fill.Round(time.Millisecond), cfg.Charts)
	fmt.Fprintf(w, "  wall %s (goal < %s): queries and forecasts %s, render %s, store %s\n",
		res.Wall.Round(time.Millisecond), res.WallGoal, res.Child.Generate.Round(time.Millisecond), res.Child.Render.Round(time.Millisecond), res.Child.Save.Round(time.Millisecond))
	fmt.Fprintf(w, "  peak RSS %.1f MiB (goal < %d MiB)\n", float64(res.PeakRSS)/(1<<20), res.PeakRSSGoal>>20)
	fmt.Fprintf(w, "  %d forecasts, mean backtest MAPE %.2f%% (linear baseline %.2f%%); HTML %d bytes, document %d bytes\n",
		res.Child.Forecasts, res.Child.MeanMAPE, res.Child.MeanLinearMAPE, res.Child.HTMLBytes, res.Child.DocBytes)
	return res, nil
}

// fill writes every series at 1-minute resolution over the period: a
// daily cycle, a slow trend and noise. Appends go in time order across
// series, as the head wants them.
func fill(ctx context.Context, db *tsdb.DB, cfg Config) (int, error) {
	start := end.Add(-time.Duration(cfg.Days) * 24 * time.Hour)
	lbls := make([]labels.Labels, cfg.Series)
	for i := range lbls {
		lbls[i] = labels.FromStrings("__name__", "bench_metric", "chart", fmt.Sprintf("c%d", i%cfg.Charts), "instance", fmt.Sprintf("host-%02d", i))
	}
	r := rand.New(rand.NewPCG(7, 11))
	minutes := cfg.Days * 24 * 60
	n := 0
	app := db.Appender(ctx)
	for m := range minutes {
		ts := start.Add(time.Duration(m) * time.Minute).UnixMilli()
		for i, l := range lbls {
			v := 100 + float64(i) + 30*math.Sin(2*math.Pi*float64(m)/1440+float64(i)) + 0.0005*float64(m) + 2*r.NormFloat64()
			if _, err := app.Append(0, l, ts, v); err != nil {
				return n, fmt.Errorf("append: %w", err)
			}
			n++
		}
		if m%1000 == 999 {
			if err := app.Commit(); err != nil {
				return n, fmt.Errorf("commit: %w", err)
			}
			app = db.Appender(ctx)
		}
	}
	if err := app.Commit(); err != nil {
		return n, fmt.Errorf("commit: %w", err)
	}
	return n, nil
}

func writeDefinition(dir string, cfg Config) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "reports:\n  - name: month\n    title: Benchmark month\n    schedule: '@monthly'\n    period: %dd\n    step: 1m\n    panels:\n", cfg.Days)
	b.WriteString("      - {type: table, title: All series, query: bench_metric}\n")
	for c := range cfg.Charts {
		fmt.Fprintf(&b, "      - {type: chart, title: Chart %d, query: 'bench_metric{chart=\"c%d\"}', forecast: {horizon: %s, season: %s}}\n", c+1, c, cfg.Horizon, cfg.Season)
	}
	p := filepath.Join(dir, "reports", "bench", "month.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create definitions: %w", err)
	}
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write definition: %w", err)
	}
	return nil
}

// child runs the report as the reporter does, minus publishing.
func child(ctx context.Context, cfg Config) (ChildResult, error) {
	var cr ChildResult
	rs, err := reporter.LoadDir(filepath.Join(cfg.ChildDir, "reports"), nil)
	if err != nil {
		return cr, err
	}
	if len(rs) != 1 {
		return cr, fmt.Errorf("want one report, got %d", len(rs))
	}
	q, err := reporter.NewQuerierFor(reporter.QueryConfig{URL: cfg.ChildURL}, nil, nil)("bench")
	if err != nil {
		return cr, err
	}
	began := time.Now()
	doc, err := reporter.Generate(ctx, q, nil, rs[0], end, time.Now())
	if err != nil {
		return cr, err
	}
	cr.Generate = time.Since(began)
	began = time.Now()
	files, err := reporter.Render(doc, rs[0].Location)
	if err != nil {
		return cr, err
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return cr, fmt.Errorf("encode document: %w", err)
	}
	cr.Render = time.Since(began)
	began = time.Now()
	out := cfg.Out
	if out == "" {
		out = filepath.Join(cfg.ChildDir, "out")
	}
	st, err := reporter.OpenStore(out)
	if err != nil {
		return cr, err
	}
	if err := st.Save(doc, files, data); err != nil {
		return cr, err
	}
	cr.Save = time.Since(began)
	for _, f := range files {
		if filepath.Ext(f.Name) == ".html" {
			cr.HTMLBytes = len(f.Data)
		}
	}
	cr.DocBytes = len(data)
	var sum, lin float64
	for _, p := range doc.Panels {
		for _, s := range p.Chart {
			if s.Forecast != nil {
				cr.Forecasts++
				sum += float64(s.Forecast.Backtest.MAPE)
				lin += float64(s.Forecast.Baseline.MAPE)
			}
		}
	}
	if cr.Forecasts > 0 {
		cr.MeanMAPE, cr.MeanLinearMAPE = sum/float64(cr.Forecasts), lin/float64(cr.Forecasts)
	}
	return cr, nil
}
