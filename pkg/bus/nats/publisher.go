package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("nats publisher closed")

// Publisher is a Watermill publisher on one NATS connection: messages are
// sent without waiting for each other and Publish returns once the stream
// acknowledged (PubAck) every one of them, that is once JetStream stored
// them (and, with sync_interval always, fsynced them).
type Publisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	streams *streams
	timeout time.Duration
	logger  *slog.Logger
	metrics *publisherMetrics

	mu     sync.RWMutex
	closed bool
}

var (
	_ message.Publisher  = (*Publisher)(nil)
	_ bus.AsyncPublisher = (*Publisher)(nil)
)

// NewPublisher connects to cfg.URL. logger and reg may be nil.
func NewPublisher(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Publisher, error) {
	c, err := open(cfg, "publisher", logger)
	if err != nil {
		return nil, err
	}
	return &Publisher{nc: c.nc, js: c.js, streams: newStreams(c.js, cfg), timeout: cfg.PublishTimeout, logger: c.logger, metrics: newPublisherMetrics(reg)}, nil
}

// Publish sends msgs to topic's stream and returns once the stream
// acknowledged every one, or with an error if any failed (some may be
// stored then; publishing them again stores them once, see msgID). Its
// deadline is the earliest deadline of the messages' contexts, else the
// publish timeout. Keys place messages on partitions, metadata become
// headers. The stream is created on first use if missing. Safe for
// concurrent use.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	return p.PublishAsync(topic, msgs...)()
}

// PublishAsync is Publish in two steps (bus.AsyncPublisher): the messages
// are sent, behind those of earlier calls, when it returns; wait, to be
// called exactly once, returns what Publish would.
func (p *Publisher) PublishAsync(topic string, msgs ...*message.Message) (wait func() error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return func() error { return ErrPublisherClosed }
	}
	if len(msgs) == 0 {
		return func() error { return nil }
	}
	start := time.Now()
	ctx, cancel := p.context(msgs)
	failed := func(sent int, err error) func() error {
		cancel()
		p.metrics.errors.WithLabelValues(topic).Add(float64(len(msgs) - sent))
		if errors.Is(err, nats.ErrMaxPayload) {
			err = fmt.Errorf("%w: %w", bus.ErrTooLarge, err)
		}
		return func() error {
			return fmt.Errorf("publish to %s: %d of %d messages not sent: %w", topic, len(msgs)-sent, len(msgs), err)
		}
	}
	ts, err := p.streams.ensure(ctx, topic)
	if err != nil {
		return failed(0, err)
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		nm, err := toNATS(ts.subject(ts.partition(bus.Key(m))), m)
		if err != nil {
			return failed(i, err)
		}
		stall := p.timeout
		if d, ok := ctx.Deadline(); ok {
			stall = max(time.Until(d), time.Millisecond)
		}
		if futures[i], err = p.js.PublishMsgAsync(nm, jetstream.WithMsgID(msgID(nm)), jetstream.WithExpectStream(ts.stream), jetstream.WithStallWait(stall)); err != nil {
			return failed(i, err)
		}
	}
	return func() error {
		defer cancel()
		return p.published(ctx, topic, futures, start)
	}
}

// published waits for the acknowledgements of futures and counts them.
func (p *Publisher) published(ctx context.Context, topic string, futures []jetstream.PubAckFuture, start time.Time) error {
	var first error
	failed := 0
	for _, f := range futures {
		select {
		case <-f.Ok():
			continue
		case err := <-f.Err():
			if first == nil {
				first = err
			}
		case <-ctx.Done():
			if first == nil {
				first = ctx.Err()
			}
		}
		failed++
	}
	p.metrics.duration.WithLabelValues(topic).Observe(time.Since(start).Seconds())
	p.metrics.records.WithLabelValues(topic).Add(float64(len(futures) - failed))
	if first == nil {
		return nil
	}
	p.metrics.errors.WithLabelValues(topic).Add(float64(failed))
	if errors.Is(first, nats.ErrMaxPayload) {
		first = fmt.Errorf("%w: %w", bus.ErrTooLarge, first)
	}
	return fmt.Errorf("publish to %s: %d of %d messages not acknowledged: %w", topic, failed, len(futures), first)
}

// context bounds a publish by the earliest message deadline, or by the
// publish timeout when none has one.
func (p *Publisher) context(msgs []*message.Message) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(p.timeout)
	for _, m := range msgs {
		if d, ok := m.Context().Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
	}
	return context.WithDeadline(msgs[0].Context(), deadline)
}

// CreateTopics creates the streams of topics that are missing.
func (p *Publisher) CreateTopics(ctx context.Context, topics ...string) error {
	for _, t := range topics {
		if _, err := p.streams.ensure(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// Ping checks that the connection is up and JetStream answers, for
// readiness probes.
func (p *Publisher) Ping(ctx context.Context) error {
	return ping(ctx, p.nc, p.js)
}

func ping(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) error {
	if s := nc.Status(); s != nats.CONNECTED {
		return fmt.Errorf("nats connection %s", s)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("jetstream account info: %w", err)
	}
	return nil
}

// Close waits for the sends in progress and closes the connection;
// Publish fails after Close, and so do waits still pending. Every
// successful Publish already waited for its acknowledgement, so nothing
// acknowledged is lost by closing.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.nc.Close()
	return nil
}
