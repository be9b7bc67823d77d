package ruler

import (
	"context"
	"time"

	"github.com/tmaflow/tmaflow/pkg/bus"
)

// Record is one record of a topic as the ruler reads it.
type Record = bus.Record

// Source reads a topic without a consumer group: every partition from the
// first record at or after since (bus.Reader; the bus chooses the broker).
type Source interface {
	// Consume calls handle for every record, concurrently across
	// partitions and in order within one, calls caughtUp once every
	// partition was read up to the end it had when Consume began, then
	// follows the topic until ctx ends (returning nil then).
	Consume(ctx context.Context, topic string, since time.Time, handle func(Record), caughtUp func()) error
}
