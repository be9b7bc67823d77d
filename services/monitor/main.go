// Command monitor is the ingest endpoint on its own, on an external Kafka:
// POST /monitor (TMA JSON) to topic-monitor; Prometheus remote_write
// (POST /api/v1/write) and text/OpenMetrics pushes
// (/api/v1/import/prometheus, /metrics/job/...) to topic-samples. `monitor hash-secret` prints the
// hash of a probe secret for the registry file.
package main

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
)

func main() { module.Exit(monitor.Module()) }
