package soak

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Config is one soak run.
type Config struct {
	benchkit.Setup
	benchkit.Load
	Duration time.Duration
	// Warmup is the start of the load whose latencies the run's
	// percentiles leave out (the 10 s lines show them).
	Warmup time.Duration
	// Rate is TMA requests/s (one message of DataItems observations each),
	// open loop.
	Rate float64
	// SampleInterval is how often everything is read; latency
	// percentiles are of the requests answered in each interval.
	SampleInterval time.Duration
	// Retention is the time-compressed retention of the broker
	// (-broker.retention) and of the ruler's in-memory window
	// (-ruler.window); RetentionCheck how often both are enforced.
	Retention      time.Duration
	RetentionCheck time.Duration
	// TSDBBlock is the TSDB's block duration, tmaflow's and Prometheus's
	// alike: their heads hold up to 1.5× it, so both reach a steady
	// state within minutes (0: their defaults, 2h).
	TSDBBlock time.Duration
	// SegmentBytes is the broker's segment size (0: tmaflow's default).
	SegmentBytes int64
	RulesDir     string
	DrainTimeout time.Duration
	// PrometheusDuration is how long Debian's Prometheus gets the same
	// series at the same rate by remote write (0: no comparison).
	PrometheusDuration          time.Duration
	PrometheusSamplesPerRequest int
	PrometheusWriters           int
	// HeapProfile saves tmaflow's heap profile at the end and prints its
	// top entries.
	HeapProfile bool
	Goals       Goals
	// OutDir keeps logs, profiles and data; empty: a temporary dir,
	// removed at the end.
	OutDir string
	// TmaflowArgs are extra flags for tmaflow (-tmaflow.arg, and what
	// follows "--").
	TmaflowArgs []string
	extraArgs   []string
}

// Goals are the targets, checked at the end.
type Goals struct {
	// RSSSlopePercent is the most RSS may grow per 10 minutes over the
	// last half, in percent of its mean there.
	RSSSlopePercent float64
	// RSSOverPrometheus is the most tmaflow's RSS may be, in multiples of
	// Prometheus's at the same samples/s.
	RSSOverPrometheus float64
	// BytesPerSample is the most broker bytes on disk per accepted sample,
	// across all topics.
	BytesPerSample float64
	P99            time.Duration
}

// RegisterFlags registers the soak's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Setup.RegisterFlags(fs, "Prometheus binary remote-written the same series at the same rate, for the RSS comparison")
	fs.DurationVar(&c.Duration, "duration", 15*time.Minute, "Length of the steady load.")
	fs.DurationVar(&c.Warmup, "warmup", 30*time.Second, "Start of the load left out of the run's latency percentiles (connections, caches, first segments); the 10 s lines show it.")
	fs.Float64Var(&c.Rate, "rate", 2000, "TMA requests/s, open loop (each one message of data-items observations).")
	c.Load.RegisterFlags(fs, 64)
	fs.DurationVar(&c.SampleInterval, "sample-interval", 10*time.Second, "How often RSS, heap, data dir, latency and counts are read.")
	fs.DurationVar(&c.Retention, "retention", 3*time.Minute, "Time-compressed retention: tmaflow's -broker.retention, -broker.stream-retention and -ruler.window, where the binary has them (the TSDB keeps its own, longer than the run, so stored samples can be counted).")
	fs.DurationVar(&c.RetentionCheck, "retention-check-interval", 10*time.Second, "tmaflow's -broker.retention-check-interval and -ruler.truncate-interval.")
	fs.DurationVar(&c.TSDBBlock, "tsdb.block-duration", 2*time.Minute, "Time-compressed TSDB head: tmaflow's -persister.tsdb.block-duration and Prometheus's --storage.tsdb.min-block-duration and max-block-duration, so both heads compact within minutes instead of growing for 2 h, and the comparison is of steady states (0: their defaults).")
	fs.Int64Var(&c.SegmentBytes, "segment-bytes", 1<<20, "tmaflow's -broker.segment-bytes: retention deletes whole segments, so at a compressed retention they must fill in a fraction of it (0: tmaflow's default).")
	fs.StringVar(&c.RulesDir, "rules-dir", "", "tmaflow's -ruler.rules.dir (e.g. ../../examples/rules, make run's); empty: the ruler runs without rules.")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 3*time.Minute, "Longest wait after the load for the labeler and persister to commit everything before stored samples are counted.")
	fs.DurationVar(&c.PrometheusDuration, "prometheus.duration", 8*time.Minute, "How long Prometheus is remote-written the same series at the same samples/s for the RSS comparison (at most -duration; 0: no comparison). Its last half should start after its head's first compaction (about 2 × tsdb.block-duration).")
	fs.IntVar(&c.PrometheusSamplesPerRequest, "prometheus.samples-per-request", 2000, "Samples per remote-write request to Prometheus (its max_samples_per_send default).")
	fs.IntVar(&c.PrometheusWriters, "prometheus.writers", 8, "Remote-write connections to Prometheus.")
	fs.BoolVar(&c.HeapProfile, "heap-profile", true, "Save tmaflow's heap profile (after a GC) at the end of the load and print its top entries.")
	fs.Float64Var(&c.Goals.RSSSlopePercent, "goal.rss-slope-percent", 1, "Goal: RSS slope over the last half, in percent of its mean per 10 minutes, below this.")
	fs.Float64Var(&c.Goals.RSSOverPrometheus, "goal.rss-over-prometheus", 2, "Goal: tmaflow's RSS at most this many times Prometheus's.")
	fs.Float64Var(&c.Goals.BytesPerSample, "goal.bytes-per-sample", 30, "Goal: broker bytes on disk per accepted sample, all topics, at most this.")
	fs.DurationVar(&c.Goals.P99, "goal.p99", 20*time.Millisecond, "Goal: ingest p99 of the run at most this.")
	fs.StringVar(&c.OutDir, "out-dir", "", "Keep logs, the heap profile and the data dirs here (empty: a temporary dir, removed).")
	fs.Func("tmaflow.arg", "Extra flag for tmaflow, repeatable (-tmaflow.arg=-runtime.memory-limit-mib=512); arguments after -- are passed too.", func(s string) error {
		c.extraArgs = append(c.extraArgs, s)
		return nil
	})
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.TmaflowSource == "" && c.TmaflowBinary == "":
		return errors.New("tmaflow.src or tmaflow.bin must be set")
	case c.Rate <= 0:
		return fmt.Errorf("rate %g: must be positive", c.Rate)
	case c.Concurrency < 1 || c.DataItems < 1 || c.Resources < 1:
		return errors.New("concurrency, data-items and resources must be at least 1")
	case c.Warmup < 0 || c.Warmup >= c.Duration:
		return fmt.Errorf("warmup %s: must be at least 0 and shorter than the duration", c.Warmup)
	case c.SampleInterval <= 0 || c.Duration < 4*c.SampleInterval:
		return fmt.Errorf("duration %s: want at least four sample intervals (%s)", c.Duration, c.SampleInterval)
	case c.TSDBBlock < 0 || (c.TSDBBlock > 0 && c.TSDBBlock < time.Minute):
		return fmt.Errorf("tsdb.block-duration %s: 0 or at least 1m", c.TSDBBlock)
	case c.Retention <= 0 || c.RetentionCheck <= 0:
		return errors.New("retention and retention-check-interval must be positive")
	case c.PrometheusDuration < 0:
		return errors.New("prometheus.duration must not be negative")
	case c.PrometheusSamplesPerRequest < 1 || c.PrometheusWriters < 1:
		return errors.New("prometheus.samples-per-request and prometheus.writers must be at least 1")
	}
	return nil
}

// SamplesPerSecond is the offered load in samples/s.
func (c *Config) SamplesPerSecond() float64 { return c.Rate * float64(c.DataItems) }

func (c *Config) tmaflowArgs() []string {
	return append(append([]string{}, c.extraArgs...), c.TmaflowArgs...)
}

// prometheusArgs are Prometheus's flags for the same time-compressed head
// and the same compaction as the persister's: blocks of TSDBBlock merged
// into larger ones up to the TSDB's default block duration, 2h (the
// maximum -persister.tsdb.block-duration keeps), so both read their young
// blocks back through memory maps alike.
func (c *Config) prometheusArgs() []string {
	if c.TSDBBlock == 0 {
		return nil
	}
	return []string{
		"--storage.tsdb.min-block-duration=" + model.Duration(c.TSDBBlock).String(),
		"--storage.tsdb.max-block-duration=" + model.Duration(max(c.TSDBBlock, time.Duration(tsdb.DefaultBlockDuration)*time.Millisecond)).String(),
	}
}
