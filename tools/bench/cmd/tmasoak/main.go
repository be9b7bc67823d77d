// Command tmasoak is the soak benchmark behind `make bench-soak`: the
// all-in-one tmaflow (-target=all, built from services/tmaflow, embedded
// broker, auth on, time-compressed retention) under a steady open-loop
// TMA load, sampling RSS, the Go heap after GC, the data dir's bytes and
// ingest latency every 10 s; then the slope of each over the last half,
// bytes per sample on the broker's disk, acknowledged samples counted in
// the TSDB, and Debian's Prometheus at the same samples/s for the RSS
// comparison. Flags after "--" (or -tmaflow.arg) go to tmaflow.
package main

import (
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
	"github.com/tmaflow/tmaflow/tools/bench/internal/soak"
)

func main() {
	var cfg soak.Config
	benchkit.Main("tmasoak", &cfg, cfg.RegisterFlags, &cfg.TmaflowArgs, soak.Run)
}
