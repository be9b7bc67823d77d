// Command reporter runs scheduled PromQL reports over a Prometheus query
// API and publishes them to topic-reports, to disk and on its HTTP page.
package main

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/reporter/reporter"
)

func main() { module.Exit(reporter.Module()) }
