// Command labeler enriches monitoring data: it consumes topic-monitor (TMA
// JSON) and topic-samples (Avro sample batches), names and labels them from
// the registry file and publishes enriched batches to topic-metrics.
package main

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/labeler/labeler"
)

func main() { module.Exit(labeler.Module()) }
