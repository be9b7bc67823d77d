// Command ruler evaluates Prometheus alerting and recording rules on
// topic-metrics of an external Kafka as the data arrives, and sends alerts
// to Alertmanager and topic-alerts.
package main

import (
	"context"
	"io"
	"os"

	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
)

func main() { module.Exit(ruler.Module()) }

// runMain runs the command until a signal or the end of ctx.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	return module.Main(ctx, ruler.Module(), args, os.Stdin, os.Stdout, stderr)
}
