// Command tmapipe is the pipeline benchmark behind `make bench-pipeline`:
// TMA messages through monitor → labeler → persister of a tmaflow process
// (built from services/tmaflow, embedded broker, auth on; -bus=nats or
// -bus=both for the embedded NATS JetStream server), the samples/s
// its TSDB stores at the highest rate whose consumer lag stays bounded,
// and the samples/s Debian's Prometheus stores when the same series are
// remote-written to it. Flags after "--" go to tmaflow.
package main

import (
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
	"github.com/tmaflow/tmaflow/tools/bench/internal/pipebench"
)

func main() {
	var cfg pipebench.Config
	benchkit.Main("tmapipe", &cfg, cfg.RegisterFlags, &cfg.TmaflowArgs, pipebench.Run)
}
