// Package contract names the topics, headers and keys of the design's
// contract table, so every producer and consumer agrees on them.
package contract

import (
	"encoding/binary"
	"errors"
)

// Topics.
const (
	TopicMonitor = "topic-monitor"
	TopicSamples = "topic-samples"
	TopicMetrics = "topic-metrics"
	TopicAlerts  = "topic-alerts"
	TopicReports = "topic-reports"
	TopicDLQ     = "topic-dlq"
)

// Kafka record headers (carried as Watermill metadata).
const (
	HeaderTenant      = "tenant"
	HeaderSource      = "source"
	HeaderReceivedAt  = "received-at"
	HeaderContentType = "content-type"
	HeaderError       = "error"
	HeaderSourceTopic = "source-topic"
	HeaderStage       = "stage"
	// HeaderMQTTTopic is the MQTT topic a record came from (the bridge
	// sets it; the labeler's rules read it as __mqtt_topic__).
	HeaderMQTTTopic = "mqtt-topic"
)

// Values of the source header.
const (
	SourceHTTP = "http"
	SourceMQTT = "mqtt"
)

// ContentTypeTMA is the content-type header of topic-monitor records.
const ContentTypeTMA = "application/json"

// DefaultTenant is the tenant of data whose probe has none, and of all data
// when authentication is off.
const DefaultTenant = "default"

// ResourceKey encodes a resourceId as the 8-byte big-endian int64 that
// TMA's data-loader reads with Kafka's LongDeserializer.
func ResourceKey(resourceID int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(resourceID))
}

// ErrKeyLength is returned for a resource key that is not 8 bytes.
var ErrKeyLength = errors.New("resource key must be 8 bytes")

// ParseResourceKey decodes a key made by ResourceKey.
func ParseResourceKey(key []byte) (int64, error) {
	if len(key) != 8 {
		return 0, ErrKeyLength
	}
	return int64(binary.BigEndian.Uint64(key)), nil
}
