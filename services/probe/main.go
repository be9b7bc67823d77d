// Command probe is tmaflow's edge probe: a small static binary that
// samples host metrics, local endpoints, commands and files, buffers them
// on disk through outages and crashes, and ships them to tmaflow (TMA
// JSON), any Prometheus remote_write receiver or MQTT.
package main

import "github.com/tmaflow/tmaflow/services/probe/internal/app"

func main() { app.Exit() }
