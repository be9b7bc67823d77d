package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// RouterConfig configures the retries and shutdown of a router.
type RouterConfig struct {
	MaxRetries      int
	InitialInterval time.Duration
	MaxInterval     time.Duration
	CloseTimeout    time.Duration
}

// RegisterFlags registers the bus.* flags.
func (c *RouterConfig) RegisterFlags(f service.FlagSet) {
	f.IntVar(&c.MaxRetries, "bus.retry.max", 3, "Retries of a failed handler before its message goes to the dead-letter topic.")
	f.DurationVar(&c.InitialInterval, "bus.retry.initial-interval", 100*time.Millisecond, "Wait before the first retry; doubled for each next one.")
	f.DurationVar(&c.MaxInterval, "bus.retry.max-interval", 5*time.Second, "Longest wait between retries.")
	f.DurationVar(&c.CloseTimeout, "bus.close-timeout", 30*time.Second, "How long shutdown waits for running handlers.")
}

// DefaultRouterConfig returns the flag defaults.
func DefaultRouterConfig() RouterConfig {
	return RouterConfig{MaxRetries: 3, InitialInterval: 100 * time.Millisecond, MaxInterval: 5 * time.Second, CloseTimeout: 30 * time.Second}
}

// Validate checks the config.
func (c RouterConfig) Validate() error {
	var errs []error
	if c.MaxRetries < 0 {
		errs = append(errs, fmt.Errorf("bus.retry.max must be >= 0, got %d", c.MaxRetries))
	}
	if c.InitialInterval < 0 {
		errs = append(errs, fmt.Errorf("bus.retry.initial-interval must be >= 0, got %s", c.InitialInterval))
	}
	if c.MaxInterval < c.InitialInterval {
		errs = append(errs, fmt.Errorf("bus.retry.max-interval (%s) must be >= bus.retry.initial-interval (%s)", c.MaxInterval, c.InitialInterval))
	}
	if c.CloseTimeout <= 0 {
		errs = append(errs, fmt.Errorf("bus.close-timeout must be > 0, got %s", c.CloseTimeout))
	}
	return errors.Join(errs...)
}

// RouterOptions are the dependencies of NewRouter.
type RouterOptions struct {
	// Config defaults to DefaultRouterConfig when zero.
	Config RouterConfig
	// Stage names the service in the stage header of dead letters;
	// the handler name when empty.
	Stage string
	// DLQ publishes dead letters. Required.
	DLQ message.Publisher
	// DLQTopic defaults to contract.TopicDLQ.
	DLQTopic string
	// Logger and Registerer may be nil.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Metrics, when set, are used instead of new ones in Registerer: a
	// service running a router and batch consumers shares one set.
	Metrics *RouterMetrics
}

// ErrNoDLQ is returned by NewRouter without a dead-letter publisher.
var ErrNoDLQ = errors.New("router needs a dead-letter publisher")

// maxErrorHeader bounds the error header of a dead letter.
const maxErrorHeader = 1024

// deadLetterOf builds the dead letter of msg, consumed from source and
// failed by its handler with err: the original key, payload and headers
// plus error, source-topic and stage (handler when stage is empty).
func deadLetterOf(msg *message.Message, err error, source, stage, handler string) *message.Message {
	if stage == "" {
		stage = handler
	}
	dead := message.NewMessage(msg.UUID, msg.Payload)
	for k, v := range msg.Metadata {
		dead.Metadata[k] = v
	}
	reason := err.Error()
	if len(reason) > maxErrorHeader {
		reason = strings.ToValidUTF8(reason[:maxErrorHeader], "")
	}
	dead.Metadata.Set(contract.HeaderError, reason)
	dead.Metadata.Set(contract.HeaderSourceTopic, source)
	dead.Metadata.Set(contract.HeaderStage, stage)
	dead.SetContext(msg.Context())
	return dead
}

// NewRouter returns a Watermill router whose handlers run inside, from the
// outside in:
//   - growing the handler goroutine's stack once (growStack);
//   - a dead-letter stage: a message whose handler still fails is published
//     to the DLQ topic with its original key, payload and metadata plus the
//     error, source-topic and stage headers, and then acknowledged. If that
//     publish fails, or the subscription is shutting down, the message is
//     nacked instead and comes again;
//   - retries with exponential backoff, skipped for errors marked Permanent;
//   - a recoverer that turns a panic into a permanent error.
//
// Handlers are added by the caller (AddConsumerHandler, AddHandler).
func NewRouter(opts RouterOptions) (*message.Router, error) {
	if opts.DLQ == nil {
		return nil, ErrNoDLQ
	}
	cfg := opts.Config
	if cfg == (RouterConfig{}) {
		cfg = DefaultRouterConfig()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("router config: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	topic := opts.DLQTopic
	if topic == "" {
		topic = contract.TopicDLQ
	}
	// Watermill logs every handler start and subscription at info.
	wlog := watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: cfg.CloseTimeout}, wlog)
	if err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	m := opts.Metrics
	if m == nil {
		m = NewRouterMetrics(opts.Registerer)
	}
	r.AddMiddleware(
		grownStack,
		deadLetter(opts.DLQ, topic, opts.Stage, m, logger),
		retry(cfg, m, logger),
		recoverer(logger),
	)
	return r, nil
}

// RouterMetrics count what handlers did, for a router and the batch
// consumers of one service.
type RouterMetrics struct {
	handled  *prometheus.CounterVec
	retries  *prometheus.CounterVec
	duration *prometheus.HistogramVec

	batchRecords  *prometheus.HistogramVec
	batchDuration *prometheus.HistogramVec
}

// NewRouterMetrics registers the handler metrics in reg (may be nil).
func NewRouterMetrics(reg prometheus.Registerer) *RouterMetrics {
	f := promauto.With(reg)
	return &RouterMetrics{
		handled: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_bus_handled_messages_total",
			Help: "Messages through a handler by outcome: ok, dead_lettered, or failed (nacked for redelivery).",
		}, []string{"handler", "outcome"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_bus_handler_retries_total",
			Help: "Handler retries after an error.",
		}, []string{"handler"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_bus_handler_duration_seconds",
			Help:    "Time a message spent in its handler, retries included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"handler"}),
		batchRecords: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_bus_batch_records",
			Help:    "Records a batch handler got at once.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}, []string{"handler"}),
		batchDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_bus_batch_duration_seconds",
			Help:    "Time a batch spent in its handler, retries and dead-lettering included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"handler"}),
	}
}

func deadLetter(pub message.Publisher, topic, stage string, m *RouterMetrics, logger *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			start := time.Now()
			handler := message.HandlerNameFromCtx(msg.Context())
			defer func() { m.duration.WithLabelValues(handler).Observe(time.Since(start).Seconds()) }()

			out, err := h(msg)
			if err == nil {
				m.handled.WithLabelValues(handler, "ok").Inc()
				return out, nil
			}
			if msg.Context().Err() != nil && !IsPermanent(err) {
				// Shutting down: the error may be the cancellation itself.
				m.handled.WithLabelValues(handler, "failed").Inc()
				return nil, err
			}
			source := message.SubscribeTopicFromCtx(msg.Context())
			dead := deadLetterOf(msg, err, source, stage, handler)
			if perr := pub.Publish(topic, dead); perr != nil {
				m.handled.WithLabelValues(handler, "failed").Inc()
				logger.Error("dead-letter message", "handler", handler, "topic", source, "uuid", msg.UUID, "err", err, "publish_err", perr)
				return nil, errors.Join(err, fmt.Errorf("publish to %s: %w", topic, perr))
			}
			m.handled.WithLabelValues(handler, "dead_lettered").Inc()
			logger.Warn("message dead-lettered", "handler", handler, "topic", source, "uuid", msg.UUID, "err", err)
			return nil, nil
		}
	}
}

func retry(cfg RouterConfig, m *RouterMetrics, logger *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			delay := cfg.InitialInterval
			for attempt := 1; ; attempt++ {
				out, err := h(msg)
				if err == nil || IsPermanent(err) || attempt > cfg.MaxRetries {
					return out, err
				}
				handler := message.HandlerNameFromCtx(msg.Context())
				logger.Warn("handler failed, retrying", "handler", handler, "uuid", msg.UUID, "attempt", attempt, "delay", delay, "err", err)
				if !service.Sleep(msg.Context(), delay) {
					return out, err
				}
				m.retries.WithLabelValues(handler).Inc()
				delay = min(2*delay, cfg.MaxInterval)
			}
		}
	}
}

// recoverer turns a handler panic into a permanent error: a panic is a bug
// that retrying the same message reproduces.
func recoverer(logger *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) (out []*message.Message, err error) {
			defer func() {
				if r := recover(); r != nil {
					logger.Error("handler panic", "handler", message.HandlerNameFromCtx(msg.Context()), "uuid", msg.UUID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					out, err = nil, Permanent(fmt.Errorf("handler panic: %v", r))
				}
			}()
			return h(msg)
		}
	}
}
