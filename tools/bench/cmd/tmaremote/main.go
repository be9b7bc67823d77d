// Command tmaremote is the remote-write benchmark behind `make
// bench-remote-write`: Prometheus remote write 1.0 into a tmaflow process
// (built from services/tmaflow, embedded broker, -target=monitor,labeler,persister)
// and into Debian's Prometheus with --web.enable-remote-write-receiver, in
// the same run, for requests of 100, 1,000 and 10,000 samples: the
// samples/s each stores, the ratio, and the CPU per stored sample. Flags
// after "--" go to tmaflow.
package main

import (
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
	"github.com/tmaflow/tmaflow/tools/bench/internal/rwbench"
)

func main() {
	var cfg rwbench.Config
	benchkit.Main("tmaremote", &cfg, cfg.RegisterFlags, &cfg.TmaflowArgs, rwbench.Run)
}
