package bus

import (
	"context"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

// A subscriber that hands out several records of a partition before the
// first is acknowledged (kafka.Config.MaxInFlight) runs their handlers
// concurrently. Handlers whose effects must keep the partition's order —
// producing to another topic, appending to a TSDB — take turns: the step
// between AwaitTurn and its release runs in record order, while the rest
// (decoding, mapping, waiting for the broker's acknowledgement) overlaps.

// Turn is one record's place in its partition's order.
type Turn struct {
	prev <-chan struct{} // closed when the previous record released; nil: first
	mine chan struct{}
	once sync.Once
}

// NewTurn returns the turn after prev (nil for the first of a sequence).
func NewTurn(prev *Turn) *Turn {
	t := &Turn{mine: make(chan struct{})}
	if prev != nil {
		t.prev = prev.mine
	}
	return t
}

// Release ends the turn and lets the next record's handler go on once the
// records before it released theirs too: turns pass strictly in order. The
// subscriber releases a record's turn when it is acknowledged, nacked or
// abandoned, so a handler that never takes its turn holds nobody up. Safe
// to call more than once.
func (t *Turn) Release() {
	t.once.Do(func() {
		if t.prev == nil {
			close(t.mine)
			return
		}
		select {
		case <-t.prev:
			close(t.mine)
		default:
			// Released ahead of its turn (acknowledged without taking it).
			go func() {
				<-t.prev
				close(t.mine)
			}()
		}
	})
}

type turnKey struct{}

// WithTurn returns ctx carrying t, for subscribers.
func WithTurn(ctx context.Context, t *Turn) context.Context {
	return context.WithValue(ctx, turnKey{}, t)
}

// AwaitTurn waits until the handlers of the records before this message's
// in its partition released their turn, and returns the release of this
// message's. Without a turn in ctx (one record at a time, or a subscriber
// without order) it returns at once. It also returns when ctx ends.
func AwaitTurn(ctx context.Context) (release func()) {
	t, ok := ctx.Value(turnKey{}).(*Turn)
	if !ok {
		return func() {}
	}
	if t.prev != nil {
		select {
		case <-t.prev:
		case <-ctx.Done():
		}
	}
	return t.Release
}

// AsyncPublisher is a publisher that can queue messages for the broker in
// call order and wait for their acknowledgement separately
// (*kafka.Publisher).
type AsyncPublisher interface {
	// PublishAsync queues msgs before it returns; wait returns once the
	// broker acknowledged them all, or the first error.
	PublishAsync(topic string, msgs ...*message.Message) (wait func() error)
}

// PublishInTurn publishes msgs in the partition order of the record being
// handled (ctx is its message's context): it takes the record's turn,
// queues the messages, releases the turn and only then waits for the
// broker, so the records of one partition share produce requests instead
// of waiting for each other's acknowledgement. A publisher that cannot
// queue is waited for within the turn.
func PublishInTurn(ctx context.Context, pub message.Publisher, topic string, msgs ...*message.Message) error {
	release := AwaitTurn(ctx)
	ap, ok := pub.(AsyncPublisher)
	if !ok {
		defer release()
		return pub.Publish(topic, msgs...)
	}
	wait := ap.PublishAsync(topic, msgs...)
	release()
	return wait()
}
