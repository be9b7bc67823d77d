// Package probebench is the edge-probe benchmark behind `make
// bench-probe`: the probe against Debian's prometheus-node-exporter plus
// prometheus --enable-feature=agent doing the same job (host metrics
// every second, shipped by remote_write to one receiver), in the same run:
// resident memory (steady and peak), CPU per second and binary size; then
// the probe alone sampling ≥ 200 series every 100 ms.
package probebench

import (
	"errors"
	"flag"
	"time"
)

// Config is the benchmark's flags.
type Config struct {
	ProbeSrc     string
	NodeExporter string
	Prometheus   string
	Duration     time.Duration
	FastDuration time.Duration
	Warmup       time.Duration
	Dir          string
	// ExtraSeries are text-file series added to the host's at 100 ms, so
	// that the run samples ≥ 200 series on small hosts too.
	ExtraSeries int
	// TmaflowArgs are the arguments after "--" (unused: no tmaflow runs).
	TmaflowArgs []string
}

// RegisterFlags registers the flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ProbeSrc, "probe.src", "../../services/probe", "The probe's module, built with CGO_ENABLED=0 -trimpath -ldflags='-s -w'.")
	fs.StringVar(&c.NodeExporter, "node-exporter", "prometheus-node-exporter", "node_exporter binary (Debian's name).")
	fs.StringVar(&c.Prometheus, "prometheus", "prometheus", "Prometheus binary, run with --enable-feature=agent.")
	fs.DurationVar(&c.Duration, "duration", 60*time.Second, "Length of the side-by-side run (1 s sampling).")
	fs.DurationVar(&c.FastDuration, "fast-duration", 30*time.Second, "Length of the probe's 100 ms run.")
	fs.DurationVar(&c.Warmup, "warmup", 10*time.Second, "Start of each run left out of the steady RSS.")
	fs.IntVar(&c.ExtraSeries, "extra-series", 50, "Series of a text file sampled beside the host's in the 100 ms run.")
	fs.StringVar(&c.Dir, "dir", "", "Working directory (default: a temporary one, removed after).")
}

// Validate checks the flags.
func (c Config) Validate() error {
	if c.Duration <= c.Warmup || c.FastDuration <= c.Warmup {
		return errors.New("duration and fast-duration must exceed warmup")
	}
	return nil
}
