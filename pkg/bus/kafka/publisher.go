package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	kafka "github.com/segmentio/kafka-go"

	"github.com/tmaflow/tmaflow/pkg/bus"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("kafka publisher closed")

// recordWriter is the part of *kafka.Writer and *sender the publisher uses.
type recordWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// Publisher is a Watermill publisher on one sender (or, with a batch
// timeout, one kafka-go Writer): all callers share its per-partition
// batches, so concurrent publishes of single records are sent together.
type Publisher struct {
	w            recordWriter
	idle         idleCloser
	admin        *admin
	timeout      time.Duration
	closeTimeout time.Duration
	logger       *slog.Logger
	metrics      *publisherMetrics

	mu     sync.RWMutex
	closed bool
}

var (
	_ message.Publisher  = (*Publisher)(nil)
	_ bus.AsyncPublisher = (*Publisher)(nil)
)

// NewPublisher returns a publisher producing with acks from all in-sync
// replicas. Records with a key go to the partition Kafka's Java client
// picks (murmur2), so Kafka Streams and Java consumers agree on placement;
// records without a key are spread at random. logger and reg may be nil.
//
// With cfg.BatchTimeout 0 (the default) records are produced by a sender
// that batches only while a partition's previous request is in flight;
// otherwise by a kafka-go Writer that lingers up to BatchTimeout for every
// batch, which costs that latency under light load.
func NewPublisher(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Publisher, error) {
	if err := errors.Join(cfg.RequireBrokers(), cfg.Validate()); err != nil {
		return nil, fmt.Errorf("kafka publisher config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := cfg.withSecurity()
	if err != nil {
		return nil, err
	}
	transport := cfg.transport()
	a := newAdmin(cfg, transport)
	if cfg.BatchTimeout == 0 {
		// p.w needs p for its metrics.
		p := newPublisher(nil, transport, a, cfg.PublishTimeout, cfg.WriteTimeout, logger, reg)
		client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: transport, Timeout: cfg.WriteTimeout}
		p.w = newSender(clientCluster{client: client, addr: client.Addr}, cfg, p.requestDone)
		return p, nil
	}
	info, errLog := clientLoggers(logger)
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Balancer:     &kafka.Murmur2Balancer{},
		MaxAttempts:  cfg.MaxAttempts,
		BatchSize:    cfg.BatchSize,
		BatchBytes:   cfg.BatchBytes,
		BatchTimeout: cfg.BatchTimeout,
		Compression:  cfg.codec(),
		ReadTimeout:  cfg.WriteTimeout,
		WriteTimeout: cfg.WriteTimeout,
		RequiredAcks: kafka.RequireAll,
		Transport:    transport,
		Logger:       info,
		ErrorLogger:  errLog,
		// Topics are created by the admin before the first write; this only
		// makes the writer refresh its metadata cache for topics it has not
		// seen, e.g. created by another process.
		AllowAutoTopicCreation: true,
	}
	p := newPublisher(w, transport, a, cfg.PublishTimeout, cfg.WriteTimeout, logger, reg)
	w.Completion = p.batchDone
	return p, nil
}

// batchDone is called by the writer for every produce request.
func (p *Publisher) batchDone(records []kafka.Message, _ error) {
	if len(records) > 0 {
		p.requestDone(records[0].Topic, len(records))
	}
}

func (p *Publisher) requestDone(topic string, records int) {
	p.metrics.batch.WithLabelValues(topic).Observe(float64(records))
}

// idleCloser is the part of *kafka.Transport Close uses.
type idleCloser interface{ CloseIdleConnections() }

func newPublisher(w recordWriter, idle idleCloser, a *admin, timeout, closeTimeout time.Duration, logger *slog.Logger, reg prometheus.Registerer) *Publisher {
	return &Publisher{w: w, idle: idle, admin: a, timeout: timeout, closeTimeout: closeTimeout, logger: logger, metrics: newPublisherMetrics(reg)}
}

// Publish writes msgs to topic and returns once the broker acknowledged
// every one of them, or with an error if any failed. Its deadline is the
// earliest deadline of the messages' contexts (Message.SetContext), else the
// publish timeout; when it expires the records may still be written later.
// Record keys come from bus.SetKey, headers from the metadata. The topic is
// created on first use if missing. Safe for concurrent use.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	return p.PublishAsync(topic, msgs...)()
}

// queueWriter is a recordWriter that can queue records and wait for them
// separately (*sender; kafka-go's Writer cannot).
type queueWriter interface {
	enqueue(ctx context.Context, msgs ...kafka.Message) (wait func() error)
}

// PublishAsync is Publish in two steps (bus.AsyncPublisher): the records
// are queued behind those of earlier calls for the same partitions when it
// returns, and wait, to be called exactly once, returns what Publish
// would. With a batch timeout (kafka-go's Writer) it writes before it
// returns.
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
	ctx, cancel := publishContext(msgs, p.timeout)
	if err := p.admin.ensureTopics(ctx, topic); err != nil {
		cancel()
		p.metrics.errors.WithLabelValues(topic).Add(float64(len(msgs)))
		return func() error { return fmt.Errorf("publish to %s: %w", topic, err) }
	}
	records := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		records[i] = toRecord(topic, m)
	}
	var written func() error
	if q, ok := p.w.(queueWriter); ok {
		written = q.enqueue(ctx, records...)
	} else {
		err := p.w.WriteMessages(ctx, records...)
		written = func() error { return err }
	}
	return func() error {
		defer cancel()
		return p.published(topic, len(msgs), start, written())
	}
}

// published counts the outcome of a publish and explains its error.
func (p *Publisher) published(topic string, n int, start time.Time, err error) error {
	p.metrics.duration.WithLabelValues(topic).Observe(time.Since(start).Seconds())
	if err == nil {
		p.metrics.records.WithLabelValues(topic).Add(float64(n))
		return nil
	}
	failed := n
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		failed = werrs.Count()
		err = firstError(werrs)
	}
	p.metrics.errors.WithLabelValues(topic).Add(float64(failed))
	p.metrics.records.WithLabelValues(topic).Add(float64(n - failed))
	if isTooLarge(err) {
		err = fmt.Errorf("%w: %w", bus.ErrTooLarge, err)
	}
	return fmt.Errorf("publish to %s: %d of %d records failed: %w", topic, failed, n, err)
}

// publishContext bounds a publish by the earliest message deadline, or by
// timeout when none has one, and ends it when the first message's context
// is canceled.
func publishContext(msgs []*message.Message, timeout time.Duration) (context.Context, context.CancelFunc) {
	base := msgs[0].Context()
	var deadline time.Time
	for _, m := range msgs {
		if d, ok := m.Context().Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
			deadline = d
		}
	}
	if deadline.IsZero() {
		return context.WithTimeout(base, timeout)
	}
	if d, ok := base.Deadline(); ok && d.Equal(deadline) {
		// The usual case (one request's messages share a context): its
		// deadline already bounds the publish, so no second timer.
		return base, func() {}
	}
	return context.WithDeadline(base, deadline)
}

func firstError(werrs kafka.WriteErrors) error {
	for _, e := range werrs {
		if e != nil {
			return e
		}
	}
	return werrs
}

// CreateTopics creates the topics that are missing, with the configured
// partitions and replication factor. Existing topics are left alone.
func (p *Publisher) CreateTopics(ctx context.Context, topics ...string) error {
	return p.admin.ensureTopics(ctx, topics...)
}

// Ping checks that a broker answers, for readiness probes.
func (p *Publisher) Ping(ctx context.Context) error {
	return p.admin.ping(ctx)
}

// Close waits for the publishes in flight, then closes the writer (or
// sender) and
// releases the connections; Publish fails after Close. Batches still in the
// writer then belong to publishes that already returned an error (every
// successful Publish waited for its acknowledgement), so Close waits for
// them at most the write timeout: with the broker down kafka-go would keep
// retrying them for seconds.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		err := p.w.Close()
		p.idle.CloseIdleConnections()
		done <- err
	}()
	t := time.NewTimer(p.closeTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("close kafka writer: %w", err)
		}
		return nil
	case <-t.C:
		return fmt.Errorf("close kafka writer: %w after %s", ErrUnflushed, p.closeTimeout)
	}
}

// ErrUnflushed is returned by Close when records of failed publishes were
// still being retried.
var ErrUnflushed = errors.New("records of failed publishes still unwritten")

// isTooLarge reports a record refused for its size, by the writer before
// sending (MessageTooLargeError) or by the broker (MESSAGE_TOO_LARGE).
func isTooLarge(err error) bool {
	var tooLarge kafka.MessageTooLargeError
	return errors.As(err, &tooLarge) || errors.Is(err, kafka.MessageSizeTooLarge)
}
