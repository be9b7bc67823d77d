package pipebench

import (
	"regexp"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// The Kafka parts of byService: what carrying a record costs.
const (
	partBroker       = "embedded broker (kfake)"
	partKafkaClients = "kafka clients (kafka-go: produce, fetch)"
)

// byService attributes a stack to the service (or background activity)
// that runs it, by priority.
var byService = []benchkit.Part{
	{Name: "monitor (HTTP ingest)", Re: regexp.MustCompile(`services/monitor|net/http\.\(\*conn\)\.serve`)},
	{Name: "labeler", Re: regexp.MustCompile(`services/labeler`)},
	{Name: "persister", Re: regexp.MustCompile(`services/persister`)},
	{Name: partBroker, Re: regexp.MustCompile(`franz-go/pkg/kfake|tmaflow/pkg/broker`)},
	{Name: partKafkaClients, Re: regexp.MustCompile(`segmentio/kafka-go|tmaflow/pkg/bus`)},
	{Name: "watermill router", Re: regexp.MustCompile(`ThreeDotsLabs/watermill`)},
	{Name: "TSDB background (head GC, compaction, WAL)", Re: regexp.MustCompile(`prometheus/prometheus/tsdb`)},
	{Name: "Go GC", Re: regexp.MustCompile(`runtime\.gcBgMarkWorker|runtime\.bgsweep|runtime\.bgscavenge`)},
}
