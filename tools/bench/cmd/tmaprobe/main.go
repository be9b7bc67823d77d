// Command tmaprobe is the edge-probe benchmark behind `make bench-probe`:
// the probe against prometheus-node-exporter + prometheus
// --enable-feature=agent shipping host metrics every second by
// remote_write, in the same run (RSS steady and peak, CPU, binary size),
// then the probe alone at 100 ms sampling.
package main

import (
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
	"github.com/tmaflow/tmaflow/tools/bench/internal/probebench"
)

func main() {
	var cfg probebench.Config
	benchkit.Main("tmaprobe", &cfg, cfg.RegisterFlags, &cfg.TmaflowArgs, probebench.Run)
}
