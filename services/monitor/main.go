// Command monitor is the TMA ingest endpoint on its own: POST /monitor
// to topic-monitor on an external Kafka. `monitor hash-secret` prints the
// hash of a probe secret for the registry file.
package main

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
)

func main() { module.Exit(monitor.Module()) }
