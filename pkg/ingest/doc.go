// Package ingest turns what producers push (TMA messages, Prometheus text
// and OpenMetrics bodies, parsed series) into the records of the topic
// contracts (topic-monitor, topic-samples), so every entry point — the
// monitor's HTTP endpoints, the MQTT bridge — validates and keys them
// alike.
package ingest
