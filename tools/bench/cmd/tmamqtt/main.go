// Command tmamqtt is the MQTT benchmark behind `make bench-mqtt`: QoS-1
// messages/s stored end to end (MQTT → bridge → Kafka → labeler →
// persister's TSDB) by a tmaflow process with 1, 100 and 1,000 concurrent
// publishers, the MQTT publish → MQTT alert latency, and the same
// publishers on mosquitto with hikhvar/mqtt2prometheus scraped by
// Prometheus. Flags after "--" go to tmaflow.
package main

import (
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
	"github.com/tmaflow/tmaflow/tools/bench/internal/mqttbench"
)

func main() {
	var cfg mqttbench.Config
	benchkit.Main("tmamqtt", &cfg, cfg.RegisterFlags, &cfg.TmaflowArgs, mqttbench.Run)
}
