package ruler

import (
	"context"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// outboxCapacity bounds the records waiting for the broker.
const outboxCapacity = 10000

// outbox publishes alert changes, recording-rule results and dead letters
// off the evaluation path: an evaluation never waits for the broker. A
// failed publish is retried with backoff, in order; only an overflowing
// queue or shutdown drops records, and those are counted.
type outbox struct {
	pub        message.Publisher
	logger     *slog.Logger
	m          *metrics
	ch         chan outMsg
	minBackoff time.Duration
	maxBackoff time.Duration
}

type outMsg struct {
	topic string
	msg   *message.Message
}

func newOutbox(pub message.Publisher, m *metrics, logger *slog.Logger, minBackoff, maxBackoff time.Duration) *outbox {
	return &outbox{pub: pub, logger: logger, m: m, ch: make(chan outMsg, outboxCapacity), minBackoff: minBackoff, maxBackoff: maxBackoff}
}

func (o *outbox) send(topic string, msg *message.Message) {
	select {
	case o.ch <- outMsg{topic, msg}:
	default:
		o.m.publishDropped.WithLabelValues(topic).Inc()
		o.logger.Warn("outgoing queue full, record dropped", "topic", topic)
	}
}

// run publishes until ctx ends, then what is queued within drain.
func (o *outbox) run(ctx, drain context.Context) {
	for {
		select {
		case <-ctx.Done():
			o.flush(drain)
			return
		case m := <-o.ch:
			o.publish(ctx, o.collect(m))
		}
	}
}

// collect groups m with what is queued behind it, by topic in order.
func (o *outbox) collect(first outMsg) map[string][]*message.Message {
	by := map[string][]*message.Message{first.topic: {first.msg}}
	for range 256 {
		select {
		case m := <-o.ch:
			by[m.topic] = append(by[m.topic], m.msg)
		default:
			return by
		}
	}
	return by
}

func (o *outbox) publish(ctx context.Context, by map[string][]*message.Message) {
	for topic, msgs := range by {
		backoff := o.minBackoff
		for {
			for _, m := range msgs {
				m.SetContext(ctx)
			}
			err := o.pub.Publish(topic, msgs...)
			if err == nil {
				o.m.published.WithLabelValues(topic).Add(float64(len(msgs)))
				break
			}
			o.m.publishFailed.WithLabelValues(topic).Add(float64(len(msgs)))
			if ctx.Err() != nil {
				o.m.publishDropped.WithLabelValues(topic).Add(float64(len(msgs)))
				o.logger.Warn("records not published before shutdown", "topic", topic, "records", len(msgs), "err", err)
				break
			}
			o.logger.Warn("publish, retrying", "topic", topic, "records", len(msgs), "backoff", backoff, "err", err)
			service.Sleep(ctx, backoff)
			backoff = min(2*backoff, o.maxBackoff)
		}
	}
}

func (o *outbox) flush(drain context.Context) {
	for {
		select {
		case m := <-o.ch:
			o.publish(drain, o.collect(m))
		default:
			return
		}
	}
}
