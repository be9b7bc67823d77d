// Command bridge is the MQTT⇄Kafka bridge: an embedded MQTT broker (or a
// subscription to an external one) whose devices' messages are
// acknowledged only after Kafka stored them, and alerts back over MQTT.
package main

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/bridge/bridge"
)

func main() { module.Exit(bridge.Module()) }
