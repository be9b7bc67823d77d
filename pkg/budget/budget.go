// Package budget keeps a process within the memory and disk its operator
// gave it: near a budget it relieves pressure first (a retention pass of
// the embedded broker), and past it ingest is refused — 429 while memory
// is short, 503 while the disk is — with a clear reason, a log line and a
// metric, instead of an OOM kill or a full disk that corrupts a WAL.
package budget

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config sets the budgets.
type Config struct {
	// DiskMiB caps the data dir's total size (0: no cap).
	DiskMiB int64
	// MinFreeMiB is the free space the data dir's file system must keep.
	MinFreeMiB int64
	// MemoryPercent is how much of the Go memory limit the live heap may
	// take before ingest is refused (no limit: no memory budget).
	MemoryPercent float64
	// CheckInterval is how often the budgets are checked.
	CheckInterval time.Duration
}

// RegisterFlags registers the budget.* flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.Int64Var(&c.DiskMiB, "budget.disk-mib", 0, "Cap of the data dir's total size (broker, TSDB, ruler) in MiB: at 90% the broker's retention runs at once, at 100% ingest answers 503 until space is free again. 0: no cap.")
	f.Int64Var(&c.MinFreeMiB, "budget.min-free-mib", 1024, "Free MiB the data dir's file system keeps: below twice this the broker's retention runs at once, below it ingest answers 503. 0: no floor.")
	f.Float64Var(&c.MemoryPercent, "budget.memory-percent", 90, "Percent of -runtime.memory-limit-mib the live heap (after collection) may take before ingest answers 429; the broker's retention runs at once when it is reached. Without a memory limit there is no memory budget.")
	f.DurationVar(&c.CheckInterval, "budget.check-interval", 5*time.Second, "How often the memory and disk budgets are checked.")
}

// Validate checks the values.
func (c *Config) Validate() error {
	var errs []error
	if c.DiskMiB < 0 {
		errs = append(errs, fmt.Errorf("budget.disk-mib %d: must be >= 0", c.DiskMiB))
	}
	if c.MinFreeMiB < 0 {
		errs = append(errs, fmt.Errorf("budget.min-free-mib %d: must be >= 0", c.MinFreeMiB))
	}
	if c.MemoryPercent <= 0 || c.MemoryPercent > 100 {
		errs = append(errs, fmt.Errorf("budget.memory-percent %g: must be in (0, 100]", c.MemoryPercent))
	}
	if c.CheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("budget.check-interval %s: must be positive", c.CheckInterval))
	}
	return errors.Join(errs...)
}

// Refusal is why ingest is refused now; Status is the HTTP status to
// answer with (429: retry soon, 503: retry once an operator acted or
// retention freed space).
type Refusal struct {
	Status int
	Reason string
}

func (r *Refusal) Error() string { return r.Reason }

// Options are the guard's dependencies; only Dir is required.
type Options struct {
	// Dir is the data dir.
	Dir string
	// Relieve frees what it can now (the broker's retention pass). Nil:
	// nothing.
	Relieve func()
	Logger  *slog.Logger
	// Registerer gets the metrics. Nil: none registered.
	Registerer prometheus.Registerer

	// For tests; nil: the real ones.
	dirSize   func(dir string) (int64, error)
	freeBytes func(dir string) (int64, error)
	liveHeap  func() uint64
	memLimit  func() int64
}

// Guard checks the budgets every interval and answers Admit from the last
// check, so a request costs one atomic load.
type Guard struct {
	cfg     Config
	opts    Options
	metrics *guardMetrics
	refusal atomic.Pointer[Refusal]
	stop    chan struct{}
}

// New returns a guard; Execute runs its checks.
func New(cfg Config, opts Options) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, errors.New("budget: no data dir")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.dirSize == nil {
		opts.dirSize = dirSize
	}
	if opts.freeBytes == nil {
		opts.freeBytes = freeBytes
	}
	if opts.liveHeap == nil {
		opts.liveHeap = liveHeap
	}
	if opts.memLimit == nil {
		opts.memLimit = func() int64 { return debug.SetMemoryLimit(-1) }
	}
	return &Guard{cfg: cfg, opts: opts, metrics: newGuardMetrics(opts.Registerer), stop: make(chan struct{})}, nil
}

// Admit returns nil while ingest may go on, else a *Refusal.
func (g *Guard) Admit() error {
	if r := g.refusal.Load(); r != nil {
		return r
	}
	return nil
}

// Execute checks the budgets until Interrupt.
func (g *Guard) Execute() error {
	t := time.NewTicker(g.cfg.CheckInterval)
	defer t.Stop()
	for {
		g.Check()
		select {
		case <-g.stop:
			return nil
		case <-t.C:
		}
	}
}

// Interrupt ends Execute.
func (g *Guard) Interrupt(error) {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
}

// Check measures memory and disk now and updates what Admit answers.
func (g *Guard) Check() {
	memRefusal, memHigh := g.checkMemory()
	diskRefusal, diskHigh := g.checkDisk()
	if (memHigh || diskHigh) && g.opts.Relieve != nil {
		g.metrics.relieved.Inc()
		g.opts.Relieve()
		// What the pass freed counts before ingest is refused.
		diskRefusal, _ = g.checkDisk()
	}
	refusal := diskRefusal
	if refusal == nil {
		refusal = memRefusal
	}
	prev := g.refusal.Swap(refusal)
	switch {
	case refusal != nil && (prev == nil || prev.Reason != refusal.Reason):
		g.opts.Logger.Error("budget reached, refusing ingest", "status", refusal.Status, "reason", refusal.Reason)
	case refusal == nil && prev != nil:
		g.opts.Logger.Info("budget back within limits, accepting ingest")
	}
	g.metrics.refusing.WithLabelValues("memory").Set(boolFloat(memRefusal != nil))
	g.metrics.refusing.WithLabelValues("disk").Set(boolFloat(diskRefusal != nil))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// checkMemory compares the live heap with the Go memory limit.
func (g *Guard) checkMemory() (refusal *Refusal, high bool) {
	limit := g.opts.memLimit()
	live := g.opts.liveHeap()
	g.metrics.liveHeap.Set(float64(live))
	if limit <= 0 || limit == math.MaxInt64 {
		g.metrics.memLimit.Set(0)
		return nil, false
	}
	g.metrics.memLimit.Set(float64(limit))
	allowed := uint64(float64(limit) * g.cfg.MemoryPercent / 100)
	if live < allowed {
		return nil, false
	}
	return &Refusal{Status: http.StatusTooManyRequests, Reason: fmt.Sprintf(
		"memory budget: live heap %d MiB is at or above %g%% of the %d MiB limit (-runtime.memory-limit-mib)",
		live>>20, g.cfg.MemoryPercent, limit>>20)}, true
}

// checkDisk compares the data dir's size with its cap and the file
// system's free space with its floor.
func (g *Guard) checkDisk() (refusal *Refusal, high bool) {
	if g.cfg.DiskMiB > 0 {
		used, err := g.opts.dirSize(g.opts.Dir)
		if err != nil {
			g.opts.Logger.Warn("measure data dir", "dir", g.opts.Dir, "err", err)
		} else {
			g.metrics.dirBytes.Set(float64(used))
			capBytes := g.cfg.DiskMiB << 20
			high = used >= capBytes*9/10
			if used >= capBytes {
				return &Refusal{Status: http.StatusServiceUnavailable, Reason: fmt.Sprintf(
					"disk budget: the data dir %s holds %d MiB of its %d MiB cap (-budget.disk-mib)",
					g.opts.Dir, used>>20, g.cfg.DiskMiB)}, true
			}
		}
	}
	if g.cfg.MinFreeMiB > 0 {
		free, err := g.opts.freeBytes(g.opts.Dir)
		if err != nil {
			g.opts.Logger.Warn("measure free space", "dir", g.opts.Dir, "err", err)
			return nil, high
		}
		g.metrics.freeBytes.Set(float64(free))
		floor := g.cfg.MinFreeMiB << 20
		high = high || free < 2*floor
		if free < floor {
			return &Refusal{Status: http.StatusServiceUnavailable, Reason: fmt.Sprintf(
				"disk budget: %d MiB free on the data dir's file system, below the %d MiB floor (-budget.min-free-mib)",
				free>>20, g.cfg.MinFreeMiB)}, true
		}
	}
	return nil, high
}

// liveHeap is the heap that survived the last collection.
func liveHeap() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

type guardMetrics struct {
	refusing  *prometheus.GaugeVec
	relieved  prometheus.Counter
	liveHeap  prometheus.Gauge
	memLimit  prometheus.Gauge
	dirBytes  prometheus.Gauge
	freeBytes prometheus.Gauge
}

func newGuardMetrics(reg prometheus.Registerer) *guardMetrics {
	f := promauto.With(reg)
	return &guardMetrics{
		refusing: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmaflow_budget_refusing",
			Help: "1 while a budget refuses ingest (memory: 429, disk: 503).",
		}, []string{"budget"}),
		relieved: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_budget_relief_runs_total",
			Help: "Retention passes run because a budget was near.",
		}),
		liveHeap: f.NewGauge(prometheus.GaugeOpts{Name: "tmaflow_budget_live_heap_bytes", Help: "Go heap that survived the last collection."}),
		memLimit: f.NewGauge(prometheus.GaugeOpts{Name: "tmaflow_budget_memory_limit_bytes", Help: "The Go memory limit (0: none)."}),
		dirBytes: f.NewGauge(prometheus.GaugeOpts{Name: "tmaflow_budget_data_dir_bytes", Help: "Bytes of the data dir (measured only with -budget.disk-mib)."}),
		freeBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_budget_free_bytes",
			Help: "Free bytes of the data dir's file system.",
		}),
	}
}
