package bus

import (
	"context"
	"time"
)

// Position is where a consumed message stood in its partition. Adapters
// put it in the message context, so handlers can follow their lag without
// knowing the broker.
type Position struct {
	Topic     string
	Partition int
	Offset    int64
	// HighWaterMark is the partition's end offset when the record was
	// fetched: HighWaterMark-Offset-1 records were behind it.
	HighWaterMark int64
	Time          time.Time
}

type positionKey struct{}

// WithPosition returns ctx carrying p.
func WithPosition(ctx context.Context, p Position) context.Context {
	return context.WithValue(ctx, positionKey{}, p)
}

// PositionFromContext returns the position of a consumed message's
// context; false for messages of an adapter that sets none.
func PositionFromContext(ctx context.Context) (Position, bool) {
	p, ok := ctx.Value(positionKey{}).(Position)
	return p, ok
}
