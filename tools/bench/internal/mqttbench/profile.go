package mqttbench

import (
	"regexp"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// byService attributes tmaflow's CPU to the piece whose code a goroutine
// runs, by priority, with the Kafka parts (embedded broker, clients) the
// bridge bench runs on.
func byService() []benchkit.Part {
	broker, clients := benchkit.BusParts(benchkit.BusKafka)
	return []benchkit.Part{
		{Name: "bridge", Re: regexp.MustCompile(`services/bridge`)},
		{Name: "MQTT broker (mochi)", Re: regexp.MustCompile(`mochi-mqtt/server`)},
		{Name: "labeler", Re: regexp.MustCompile(`services/labeler`)},
		{Name: "persister", Re: regexp.MustCompile(`services/persister`)},
		{Name: "ruler", Re: regexp.MustCompile(`services/ruler`)},
		broker,
		clients,
		{Name: "TSDB background (head GC, compaction, WAL)", Re: regexp.MustCompile(`prometheus/prometheus/tsdb`)},
		benchkit.GoGCPart,
	}
}
