// Command persister stores topic-metrics of an external Kafka in an
// embedded Prometheus TSDB, optionally forwards it by remote_write, and
// serves the Prometheus query API.
package main

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/persister/persister"
)

func main() { module.Exit(persister.Module()) }
