// Command monitor is the TMA ingest endpoint on its own: POST /monitor
// to topic-monitor on an external Kafka. `monitor hash-secret` prints the
// hash of a probe secret for the registry file.
package main

import (
	"context"
	"io"

	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
)

func main() { module.Exit(monitor.Module()) }

// runMain runs the command until a signal or the end of ctx.
func runMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return module.Main(ctx, monitor.Module(), args, stdin, stdout, stderr)
}
