// Command labeler enriches monitoring data: it consumes topic-monitor (TMA
// JSON) and topic-samples (Avro sample batches), names and labels them from
// the registry file and publishes enriched batches to topic-metrics.
package main

import (
	"context"
	"io"
	"os"

	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/labeler/labeler"
)

func main() { module.Exit(labeler.Module()) }

// runMain runs the command until a signal or the end of ctx.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	return module.Main(ctx, labeler.Module(), args, os.Stdin, os.Stdout, stderr)
}
