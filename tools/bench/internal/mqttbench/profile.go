package mqttbench

import (
	"regexp"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// byService attributes tmaflow's CPU to the piece whose code a goroutine
// runs, the first match from the stack's root counting.
var byService = []benchkit.Part{
	{Name: "bridge", Re: regexp.MustCompile(`services/bridge`)},
	{Name: "MQTT broker (mochi)", Re: regexp.MustCompile(`mochi-mqtt/server`)},
	{Name: "labeler", Re: regexp.MustCompile(`services/labeler`)},
	{Name: "persister", Re: regexp.MustCompile(`services/persister`)},
	{Name: "ruler", Re: regexp.MustCompile(`services/ruler`)},
	{Name: "embedded broker (kfake)", Re: regexp.MustCompile(`franz-go/pkg/kfake|tmaflow/pkg/broker`)},
	{Name: "kafka clients (kafka-go: produce, fetch)", Re: regexp.MustCompile(`segmentio/kafka-go|tmaflow/pkg/bus`)},
	{Name: "TSDB background (head GC, compaction, WAL)", Re: regexp.MustCompile(`prometheus/prometheus/tsdb`)},
	{Name: "Go GC", Re: regexp.MustCompile(`runtime\.gcBgMarkWorker|runtime\.bgsweep|runtime\.bgscavenge`)},
}
