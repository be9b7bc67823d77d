package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// BatchHandler handles the records of one batch, given in the order they
// were consumed (each partition's order). It returns nil once the effects
// of every record are durable, or one error per record: nil for a record
// done, an error marked Permanent for one that can never succeed (it goes
// to the dead-letter topic), any other error for one to retry. The handler
// must not keep msgs after it returned.
type BatchHandler func(ctx context.Context, msgs []*message.Message) []error

// BatchConfig bounds a batch: the records waiting when the first arrives,
// up to MaxRecords or MaxBytes of payload, and, with Linger, those that
// arrive within Linger of the first.
type BatchConfig struct {
	MaxRecords int
	MaxBytes   int
	Linger     time.Duration
}

// RegisterFlags registers the bus.batch.* flags.
func (c *BatchConfig) RegisterFlags(f service.FlagSet) {
	f.IntVar(&c.MaxRecords, "bus.batch.max-records", 1000, "Most records a batch handler gets at once (the subscriber hands out at most -kafka.max-in-flight per partition before they are acknowledged).")
	f.IntVar(&c.MaxBytes, "bus.batch.max-bytes", 8<<20, "Most payload bytes a batch handler gets at once.")
	f.DurationVar(&c.Linger, "bus.batch.linger", 0, "How long a batch waits for more records after its first; 0 takes what is waiting, adding no latency.")
}

// DefaultBatchConfig returns the flag defaults.
func DefaultBatchConfig() BatchConfig {
	return BatchConfig{MaxRecords: 1000, MaxBytes: 8 << 20}
}

// Validate checks the config.
func (c BatchConfig) Validate() error {
	var errs []error
	if c.MaxRecords < 1 {
		errs = append(errs, fmt.Errorf("bus.batch.max-records must be >= 1, got %d", c.MaxRecords))
	}
	if c.MaxBytes < 1 {
		errs = append(errs, fmt.Errorf("bus.batch.max-bytes must be >= 1, got %d", c.MaxBytes))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("bus.batch.linger must be >= 0, got %s", c.Linger))
	}
	return errors.Join(errs...)
}

// BatchOptions are the dependencies of NewBatchConsumer.
type BatchOptions struct {
	// Name labels the consumer's metrics and logs (as a router's handler
	// name does).
	Name string
	// Topic is consumed through Subscriber.
	Topic      string
	Subscriber message.Subscriber
	Handler    BatchHandler
	// Config (retries, close timeout) defaults to DefaultRouterConfig,
	// Batch to DefaultBatchConfig, when zero.
	Config RouterConfig
	Batch  BatchConfig
	// Stage names the service in the stage header of dead letters; Name
	// when empty.
	Stage string
	// DLQ publishes dead letters. Required.
	DLQ message.Publisher
	// DLQTopic defaults to contract.TopicDLQ.
	DLQTopic string
	// Logger may be nil. Metrics, when nil, are registered in Registerer
	// (may be nil too).
	Logger     *slog.Logger
	Metrics    *RouterMetrics
	Registerer prometheus.Registerer
}

// BatchConsumer runs a BatchHandler over one topic with the router's
// semantics per record: retries with backoff for transient errors, the
// dead-letter topic for permanent ones and for those still failing after
// the retries (a record is acknowledged once dead-lettered, nacked when
// even that fails), a handler panic isolated to its record by handling
// the batch's records one by one. Offsets are committed by the subscriber
// for acknowledged records only, so a batch is acknowledged — and its
// offsets move — only after its effects are durable.
//
// Batches are handled one after the other. A record retried is handled
// again after its batch neighbours succeeded; handlers that need a strict
// order across a failure fail every record of the batch.
type BatchConsumer struct {
	opts    BatchOptions
	cfg     RouterConfig
	batch   BatchConfig
	dlq     string
	logger  *slog.Logger
	metrics *RouterMetrics
	running chan struct{}
}

// NewBatchConsumer checks opts and returns the consumer, ready to Run.
func NewBatchConsumer(opts BatchOptions) (*BatchConsumer, error) {
	if opts.DLQ == nil {
		return nil, ErrNoDLQ
	}
	if opts.Subscriber == nil || opts.Handler == nil || opts.Topic == "" || opts.Name == "" {
		return nil, errors.New("batch consumer needs a name, a topic, a subscriber and a handler")
	}
	c := &BatchConsumer{opts: opts, cfg: opts.Config, batch: opts.Batch, dlq: opts.DLQTopic, logger: opts.Logger, metrics: opts.Metrics, running: make(chan struct{})}
	if c.cfg == (RouterConfig{}) {
		c.cfg = DefaultRouterConfig()
	}
	if c.batch == (BatchConfig{}) {
		c.batch = DefaultBatchConfig()
	}
	if err := errors.Join(c.cfg.Validate(), c.batch.Validate()); err != nil {
		return nil, fmt.Errorf("batch consumer %s config: %w", opts.Name, err)
	}
	if c.dlq == "" {
		c.dlq = contract.TopicDLQ
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.metrics == nil {
		c.metrics = NewRouterMetrics(opts.Registerer)
	}
	return c, nil
}

// Running is closed once the consumer subscribed.
func (c *BatchConsumer) Running() <-chan struct{} { return c.running }

// Run subscribes and handles batches until ctx ends (the batch being
// handled then gets up to the close timeout to finish) or the subscription
// closes. It returns an error only when it could not subscribe.
func (c *BatchConsumer) Run(ctx context.Context) error {
	in, err := c.opts.Subscriber.Subscribe(ctx, c.opts.Topic)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", c.opts.Topic, err)
	}
	close(c.running)
	// Handlers outlive ctx by the close timeout, so a batch in progress at
	// shutdown can finish and be acknowledged.
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(c.cfg.CloseTimeout, cancel)
		context.AfterFunc(hctx, func() { t.Stop() })
	})
	defer stop()

	var batch []*message.Message
	for {
		var first *message.Message
		var ok bool
		select {
		case first, ok = <-in:
		case <-ctx.Done():
			return nil
		}
		if !ok {
			return nil
		}
		var closed bool
		batch, closed = c.collect(ctx, in, append(batch[:0], first))
		c.handle(ctx, hctx, batch)
		clear(batch)
		if closed {
			return nil
		}
	}
}

// idleYields is how often collect lets the subscriber's goroutines run
// before it takes an empty channel for the end of what was fetched:
// records of one fetch are handed over one by one.
const idleYields = 2

// collect adds to batch what is waiting on in, within the bounds. closed
// reports that in was closed.
func (c *BatchConsumer) collect(ctx context.Context, in <-chan *message.Message, batch []*message.Message) (_ []*message.Message, closed bool) {
	bytes := len(batch[0].Payload)
	var linger <-chan time.Time
	if c.batch.Linger > 0 {
		t := time.NewTimer(c.batch.Linger)
		defer t.Stop()
		linger = t.C
	}
	idle := 0
	for len(batch) < c.batch.MaxRecords && bytes < c.batch.MaxBytes {
		select {
		case m, ok := <-in:
			if !ok {
				return batch, true
			}
			batch, bytes, idle = append(batch, m), bytes+len(m.Payload), 0
			continue
		default:
		}
		if idle < idleYields {
			idle++
			runtime.Gosched()
			continue
		}
		if linger == nil {
			return batch, false
		}
		select {
		case m, ok := <-in:
			if !ok {
				return batch, true
			}
			batch, bytes, idle = append(batch, m), bytes+len(m.Payload), 0
		case <-linger:
			return batch, false
		case <-ctx.Done():
			return batch, false
		}
	}
	return batch, false
}

// handle runs the handler over batch until every record is acknowledged,
// dead-lettered or (at shutdown, or when dead-lettering fails) nacked.
func (c *BatchConsumer) handle(ctx, hctx context.Context, batch []*message.Message) {
	name := c.opts.Name
	start := time.Now()
	c.metrics.batchRecords.WithLabelValues(name).Observe(float64(len(batch)))
	defer func() { c.metrics.batchDuration.WithLabelValues(name).Observe(time.Since(start).Seconds()) }()

	pending := batch
	delay := c.cfg.InitialInterval
	for attempt := 0; ; attempt++ {
		errs := c.call(hctx, pending)
		var retry []*message.Message
		var firstErr error
		for i, m := range pending {
			err := errs[i]
			switch {
			case err == nil:
				m.Ack()
				c.metrics.handled.WithLabelValues(name, "ok").Inc()
			case !IsPermanent(err) && (m.Context().Err() != nil || hctx.Err() != nil):
				// Shutting down, or the partition moved: it comes again.
				m.Nack()
				c.metrics.handled.WithLabelValues(name, "failed").Inc()
			case IsPermanent(err) || attempt >= c.cfg.MaxRetries:
				c.deadLetter(m, err)
			default:
				retry = append(retry, m)
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		if len(retry) == 0 {
			return
		}
		c.logger.Warn("batch handler failed, retrying", "handler", name, "records", len(retry), "of", len(batch), "attempt", attempt+1, "delay", delay, "err", firstErr)
		c.metrics.retries.WithLabelValues(name).Add(float64(len(retry)))
		if !service.Sleep(ctx, delay) {
			for _, m := range retry {
				m.Nack()
				c.metrics.handled.WithLabelValues(name, "failed").Inc()
			}
			return
		}
		delay = min(2*delay, c.cfg.MaxInterval)
		pending = retry
	}
}

// call runs the handler and returns one error per record. A panic is a
// bug that the same record reproduces: when the batch has several records
// they are handled again one by one, so only the poison one is
// dead-lettered.
func (c *BatchConsumer) call(ctx context.Context, msgs []*message.Message) []error {
	errs, panicked := c.safeCall(ctx, msgs)
	if panicked == nil {
		return errs
	}
	if len(msgs) == 1 {
		return []error{panicked}
	}
	errs = make([]error, len(msgs))
	for i := range msgs {
		one, p := c.safeCall(ctx, msgs[i:i+1])
		if p != nil {
			errs[i] = p
			continue
		}
		errs[i] = one[0]
	}
	return errs
}

// safeCall runs the handler, recovering a panic into a permanent error,
// and shapes its answer into one error per record.
func (c *BatchConsumer) safeCall(ctx context.Context, msgs []*message.Message) (errs []error, panicked error) {
	defer func() {
		if r := recover(); r != nil {
			c.logger.Error("handler panic", "handler", c.opts.Name, "records", len(msgs), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			errs, panicked = nil, Permanent(fmt.Errorf("handler panic: %v", r))
		}
	}()
	errs = c.opts.Handler(ctx, msgs)
	switch {
	case errs == nil:
		return make([]error, len(msgs)), nil
	case len(errs) != len(msgs):
		// A bug in the handler: nothing is known to be done.
		err := fmt.Errorf("batch handler %s answered %d outcomes for %d records", c.opts.Name, len(errs), len(msgs))
		errs = make([]error, len(msgs))
		for i := range errs {
			errs[i] = err
		}
	}
	return errs, nil
}

// deadLetter publishes m to the dead-letter topic and acknowledges it, or
// nacks it (it comes again) when the publish fails.
func (c *BatchConsumer) deadLetter(m *message.Message, err error) {
	name := c.opts.Name
	if perr := c.opts.DLQ.Publish(c.dlq, deadLetterOf(m, err, c.opts.Topic, c.opts.Stage, name)); perr != nil {
		m.Nack()
		c.metrics.handled.WithLabelValues(name, "failed").Inc()
		c.logger.Error("dead-letter message", "handler", name, "topic", c.opts.Topic, "uuid", m.UUID, "err", err, "publish_err", perr)
		return
	}
	m.Ack()
	c.metrics.handled.WithLabelValues(name, "dead_lettered").Inc()
	c.logger.Warn("message dead-lettered", "handler", name, "topic", c.opts.Topic, "uuid", m.UUID, "err", err)
}

// RunBatchConsumers runs consumers until ctx ends and they finished their
// batches. One that stops before — it could not subscribe, or its
// subscription ended — stops the others and makes the error.
func RunBatchConsumers(ctx context.Context, consumers ...*BatchConsumer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(consumers))
	for _, c := range consumers {
		go func() {
			err := c.Run(ctx)
			if err == nil && ctx.Err() == nil {
				err = fmt.Errorf("consumer %s stopped: its subscription of %s ended", c.opts.Name, c.opts.Topic)
			}
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var all []error
	for range consumers {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// AllRunning returns a channel closed once every consumer subscribed, or
// when ctx ends first.
func AllRunning(ctx context.Context, consumers ...*BatchConsumer) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range consumers {
			select {
			case <-c.Running():
			case <-ctx.Done():
				return
			}
		}
	}()
	return done
}

// Fail sets the error of record i of a batch of n in errs, making errs at
// the first error: BatchHandler's answer, built record by record.
func Fail(errs []error, n, i int, err error) []error {
	if errs == nil {
		errs = make([]error, n)
	}
	errs[i] = err
	return errs
}
