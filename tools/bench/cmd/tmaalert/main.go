// Command tmaalert is the alert-latency benchmark behind `make
// bench-alert`: the time from POST /monitor of a value crossing a
// threshold to the alert at an Alertmanager webhook (and on
// topic-alerts) for tmaflow, and from the remote write of the same value
// for Debian's Prometheus at evaluation_interval 1s and 100ms, with the
// same 1,000 rules, Alertmanager and background load, and the CPU each
// spent. Flags after "--" go to tmaflow.
package main

import (
	"github.com/tmaflow/tmaflow/tools/bench/internal/alertbench"
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

func main() {
	var cfg alertbench.Config
	benchkit.Main("tmaalert", &cfg, cfg.RegisterFlags, &cfg.TmaflowArgs, alertbench.Run)
}
