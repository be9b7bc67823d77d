// Command ruler evaluates Prometheus alerting and recording rules on
// topic-metrics of an external Kafka as the data arrives, and sends alerts
// to Alertmanager and topic-alerts.
package main

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
)

func main() { module.Exit(ruler.Module()) }
