// Command persister stores topic-metrics of an external Kafka in an
// embedded Prometheus TSDB, optionally forwards it by remote_write, and
// serves the Prometheus query API.
package main

import (
	"context"
	"io"
	"os"

	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/persister/persister"
)

func main() { module.Exit(persister.Module()) }

// runMain runs the command until a signal or the end of ctx.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	return module.Main(ctx, persister.Module(), args, os.Stdin, os.Stdout, stderr)
}
