// Command tmaflow is the all-in-one tmaflow: an embedded Kafka-protocol
// broker (unless --kafka.brokers points at a Kafka) and the services of
// --target (all by default) in one process.
package main

import (
	"os"

	"github.com/tmaflow/tmaflow/services/tmaflow/internal/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
