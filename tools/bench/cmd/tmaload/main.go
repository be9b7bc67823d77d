// Command tmaload is the ingest benchmark behind `make bench-ingest`: it
// posts 20-observation TMA messages to tmaflow (started in-process on an
// embedded broker unless -url is given) at a sweep of concurrency levels,
// and the same load to a no-op Go HTTP handler, the floor. Flags after
// "--" go to the in-process tmaflow.
package main

import (
	"github.com/tmaflow/tmaflow/tools/bench/internal/bench"
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

func main() {
	var cfg bench.Config
	benchkit.Main("tmaload", &cfg, cfg.RegisterFlags, &cfg.TmaflowArgs, bench.Run)
}
