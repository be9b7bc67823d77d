// Package bus holds what every tmaflow service shares on the message bus:
// the record key carried as Watermill metadata, the permanent-error marker
// and the router with retry, recoverer and the topic-dlq poison queue.
// Broker adapters live in subpackages (bus/kafka).
package bus

import "github.com/ThreeDotsLabs/watermill/message"

// MetadataKey is the reserved metadata name under which a message carries
// its record key. Adapters send it as the record key, never as a header,
// and set it on received messages, so the key survives a hop through a
// handler or the poison queue. Watermill metadata is map[string]string, and
// Go strings hold arbitrary bytes, so binary keys (8-byte resource ids)
// pass unchanged.
const MetadataKey = "_key"

// SetKey sets the record key of msg. A nil key removes it (the broker then
// spreads the records over partitions).
func SetKey(msg *message.Message, key []byte) {
	if key == nil {
		delete(msg.Metadata, MetadataKey)
		return
	}
	if msg.Metadata == nil {
		msg.Metadata = message.Metadata{}
	}
	msg.Metadata[MetadataKey] = string(key)
}

// Key returns the record key of msg, or nil when it has none. An empty,
// non-nil key is distinct from no key, as in Kafka.
func Key(msg *message.Message) []byte {
	k, ok := msg.Metadata[MetadataKey]
	if !ok {
		return nil
	}
	return []byte(k)
}
