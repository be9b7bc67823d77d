// Command tmaflow is the all-in-one tmaflow: an embedded Kafka-protocol
// broker (unless --kafka.brokers points at a Kafka) and the services of
// --target (all by default: monitor, labeler, persister, ruler) in one
// process, each built from its module (app's module table).
//
// One registry file (-registry, or -monitor.auth.registry as before) feeds
// every service: the monitor's credentials, the labeler's names and
// labels, the query API's credentials; each service's own flag
// (-labeler.registry, -persister.api.auth.registry) overrides it. State
// lives in -data-dir: the broker's logs in kafka/, the TSDB in tsdb/.
// Listeners: monitor 127.0.0.1:8080 (POST /monitor), labeler
// 127.0.0.1:8081 (GET /registry), persister 127.0.0.1:9090 (the Prometheus
// query API, /api/v1/...). The query API wants the HTTP Basic credentials
// of a registry probe (or the trusted X-Scope-OrgID header) and answers
// for that probe's tenant only; -persister.api.default-tenant is unset, so
// requests without either get 401. SIGHUP reloads every service.
package main

import (
	"os"

	"github.com/tmaflow/tmaflow/services/tmaflow/app"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
