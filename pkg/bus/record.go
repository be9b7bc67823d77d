package bus

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Record is one record of a topic as a Reader delivers it: read without a
// consumer group, so nothing is acknowledged.
type Record struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
	Time      time.Time
}

// Reader reads a topic without a consumer group: every partition from the
// first record at or after a time. Services that must see every partition
// (the ruler shards by tenant, not by partition) read this way.
type Reader interface {
	// Consume calls handle for every record, concurrently across
	// partitions and in order within one, calls caughtUp once every
	// partition was read up to the end it had when Consume began, then
	// follows the topic until ctx ends (returning nil then).
	Consume(ctx context.Context, topic string, since time.Time, handle func(Record), caughtUp func()) error
}

// Subscriber is a Watermill subscriber that can tell how far its consumer
// group is behind, for readiness ("ready only when caught up").
type Subscriber interface {
	message.Subscriber
	// LagOf returns a function giving how many records of topics the
	// subscriber's consumer group is behind the partition ends.
	LagOf(topics ...string) func(context.Context) (int64, error)
}
