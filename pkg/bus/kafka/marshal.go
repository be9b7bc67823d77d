package kafka

import (
	"context"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	kafka "github.com/segmentio/kafka-go"

	"github.com/tmaflow/tmaflow/pkg/bus"
)

// HeaderUUID is the record header carrying the Watermill message UUID.
// Messages published with an empty UUID get no such header; records without
// it are given the UUID "<topic>-<partition>-<offset>", stable across
// redeliveries.
const HeaderUUID = "_watermill_message_uuid"

// toRecord maps a message to a record. The payload and metadata are
// referenced, not copied: callers must not change them while publishing.
func toRecord(topic string, msg *message.Message) kafka.Message {
	r := kafka.Message{Topic: topic, Key: bus.Key(msg), Value: msg.Payload}
	n := len(msg.Metadata)
	if msg.UUID != "" {
		n++
	}
	if n > 0 {
		r.Headers = make([]kafka.Header, 0, n)
	}
	if msg.UUID != "" {
		r.Headers = append(r.Headers, kafka.Header{Key: HeaderUUID, Value: []byte(msg.UUID)})
	}
	for k, v := range msg.Metadata {
		if k == bus.MetadataKey {
			continue
		}
		r.Headers = append(r.Headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	return r
}

// toMessage maps a record to a message. Headers become metadata (the last
// of repeated headers wins) and the key is set with bus.SetKey.
func toMessage(r kafka.Message) *message.Message {
	uuid := ""
	md := make(message.Metadata, len(r.Headers)+1)
	for _, h := range r.Headers {
		if h.Key == HeaderUUID {
			uuid = string(h.Value)
			continue
		}
		md[h.Key] = string(h.Value)
	}
	if uuid == "" {
		uuid = r.Topic + "-" + strconv.Itoa(r.Partition) + "-" + strconv.FormatInt(r.Offset, 10)
	}
	msg := message.NewMessage(uuid, r.Value)
	msg.Metadata = md
	if r.Key != nil {
		bus.SetKey(msg, r.Key)
	}
	return msg
}

// Record describes where a consumed message came from.
type Record = bus.Position

// RecordFromContext returns the record of a consumed message's context.
func RecordFromContext(ctx context.Context) (Record, bool) { return bus.PositionFromContext(ctx) }

func withRecord(ctx context.Context, r kafka.Message) context.Context {
	return bus.WithPosition(ctx, bus.Position{
		Topic:         r.Topic,
		Partition:     r.Partition,
		Offset:        r.Offset,
		HighWaterMark: r.HighWaterMark,
		Time:          r.Time,
	})
}
