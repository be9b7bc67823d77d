package labeler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Handler names, also the stage header of the labeler's dead letters.
const (
	StageTMA     = "labeler-tma"
	StageSamples = "labeler-samples"
)

// Options are the service's dependencies.
type Options struct {
	// Subscriber delivers topic-monitor and topic-samples (one Subscribe
	// per topic), in the labeler's consumer group. Required. Execute
	// closes it once the consumers stopped.
	Subscriber message.Subscriber
	// Publisher takes the enriched batches to topic-metrics and dead
	// letters to topic-dlq. Required; Publish must return nil only once
	// the broker acknowledged, since the consumed record is acknowledged
	// (its offset committed) right after. Close it after Execute returned.
	Publisher message.Publisher
	// Registry gets the metrics. Nil: a private registry.
	Registry *prometheus.Registry
	// Prober is marked ready once the consumers run and the consumer caught
	// up. Nil: a new one.
	Prober *service.Prober
	Logger *slog.Logger
	// Now stamps registry loads. Nil: time.Now.
	Now func() time.Time
	// Lag, if set, returns how many records of topic-monitor and
	// topic-samples the consumer group is behind the partition ends;
	// readiness waits until it is within Config.Ready.MaxLag. Nil: ready
	// once the consumer runs.
	Lag func(context.Context) (int64, error)
}

// Service is the labeler, run as a run-group actor with Execute and
// Interrupt.
type Service struct {
	cfg       Config
	pub       message.Publisher
	prober    *service.Prober
	logger    *slog.Logger
	now       func() time.Time
	lag       func(context.Context) (int64, error)
	metrics   *metrics
	sub       message.Subscriber
	consumers []*bus.BatchConsumer
	http      *service.HTTPServer // nil without a listen address
	handler   http.Handler

	snap     atomic.Pointer[snapshot]
	reloadMu sync.Mutex
	// Guarded by reloadMu: the file state last acted on, the state the
	// watcher saw at its previous check (a change is loaded once it has
	// settled), and the last failed reload, shown by GET /registry.
	seen      fileState
	pending   fileState
	lastError *loadError

	decoders sync.Pool // *samples.Decoder

	stop     chan struct{}
	stopOnce sync.Once
}

type loadError struct {
	err    error
	at     time.Time
	sha256 string
}

// New loads the registry file (failing with every problem in it, located
// by line and field), builds the consumers, binds the listener and returns
// the service ready to Execute.
func New(cfg Config, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("labeler config: %w", err)
	}
	if opts.Subscriber == nil {
		return nil, errors.New("labeler: no subscriber")
	}
	if opts.Publisher == nil {
		return nil, errors.New("labeler: no publisher")
	}
	service.Defaults(&opts.Registry, &opts.Prober, &opts.Logger, &opts.Now)
	s := &Service{
		cfg:     cfg,
		pub:     opts.Publisher,
		prober:  opts.Prober,
		logger:  opts.Logger,
		now:     opts.Now,
		lag:     opts.Lag,
		metrics: newMetrics(opts.Registry),
		stop:    make(chan struct{}),
	}
	s.prober.NotReady("starting")
	limits := cfg.Limits
	s.decoders.New = func() any { return &samples.Decoder{Limits: limits} }

	st, _ := statFile(cfg.Registry)
	snap, err := loadSnapshot(cfg.Registry, s.now())
	if err != nil {
		return nil, err
	}
	s.seen, s.pending = st, st
	s.snap.Store(snap)
	s.metrics.loaded(snap)

	metrics := bus.NewRouterMetrics(opts.Registry)
	s.sub = opts.Subscriber
	for _, h := range []struct {
		name, topic string
		handle      bus.BatchHandler
	}{
		{StageTMA, contract.TopicMonitor, s.handleTMA},
		{StageSamples, contract.TopicSamples, s.handleSamples},
	} {
		c, err := bus.NewBatchConsumer(bus.BatchOptions{
			Name:       h.name,
			Topic:      h.topic,
			Subscriber: opts.Subscriber,
			Handler:    h.handle,
			Config:     cfg.Bus,
			Batch:      cfg.Batch,
			DLQ:        opts.Publisher,
			Logger:     s.logger,
			Metrics:    metrics,
		})
		if err != nil {
			return nil, err
		}
		s.consumers = append(s.consumers, c)
	}

	mux := service.OpsMux(opts.Registry, s.prober)
	mux.HandleFunc("GET "+RegistryPath, s.serveRegistry)
	s.handler = mux
	if cfg.ListenAddress != "" {
		if s.http, err = service.Listen(cfg.ListenAddress, mux, nil, s.logger); err != nil {
			return nil, err
		}
		s.http.Server.ErrorLog = slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug)
		s.http.ShutdownTimeout = cfg.ShutdownTimeout
	}
	return s, nil
}

// RegistryPath serves the registry in force as JSON.
const RegistryPath = "/registry"

// Handler serves GET /registry and the ops endpoints (/metrics, /-/healthy,
// /-/ready), for callers that mount it elsewhere.
func (s *Service) Handler() http.Handler { return s.handler }

// Addr is the bound listen address, or "" without one.
func (s *Service) Addr() string {
	if s.http == nil {
		return ""
	}
	return s.http.Addr()
}

// Execute consumes until Interrupt, then stops consuming (in-flight
// records finish or are left for re-delivery) and shuts the listener down.
func (s *Service) Execute() error {
	s.prober.Healthy()
	var g run.Group
	g.Add(func() error {
		<-s.stop
		return nil
	}, func(error) { s.Interrupt(nil) })
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			err := bus.RunBatchConsumers(ctx, s.consumers...)
			// Offsets of what was acknowledged are committed on close.
			if cerr := s.sub.Close(); cerr != nil {
				s.logger.Warn("close subscriber", "err", cerr)
			}
			if err != nil {
				return fmt.Errorf("run consumers: %w", err)
			}
			return nil
		}, func(error) {
			s.prober.NotReady("shutting down")
			cancel()
		})
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			select {
			case <-bus.AllRunning(ctx, s.consumers...):
				if ctx.Err() != nil {
					return nil
				}
				s.logger.Info("labeler consuming", "topics", []string{contract.TopicMonitor, contract.TopicSamples}, "registry", s.cfg.Registry)
			case <-ctx.Done():
				return nil
			}
			if !s.waitCaughtUp(ctx) {
				return nil
			}
			if s.cfg.RegistryCheckInterval > 0 {
				s.watchRegistry(ctx)
			}
			<-ctx.Done()
			return nil
		}, func(error) { cancel() })
	}
	if s.http != nil {
		g.Add(s.serve, func(error) { s.shutdown() })
	}
	return g.Run()
}

// waitCaughtUp marks the prober ready once the consumer caught up; false
// if ctx ended first.
func (s *Service) waitCaughtUp(ctx context.Context) bool {
	if s.lag != nil {
		started := s.now()
		lag, ok := service.CatchUp{
			Config: s.cfg.Ready,
			Lag: func(ctx context.Context) (int64, bool, error) {
				lag, err := s.lag(ctx)
				return lag, err == nil, err
			},
			Topics: contract.TopicMonitor + " and " + contract.TopicSamples,
			Prober: s.prober,
			Now:    s.now,
		}.Wait(ctx)
		if !ok {
			return false
		}
		s.logger.Info("caught up, ready", "lag", lag, "after", s.now().Sub(started))
	}
	s.prober.Ready()
	return true
}

func (s *Service) serve() error {
	s.logger.Info("labeler listening", "addr", s.Addr())
	return s.http.Serve()
}

func (s *Service) shutdown() {
	s.http.Interrupt(nil)
}

// Close releases the listener of a service whose Execute never ran; after
// Execute it is a no-op.
func (s *Service) Close() error {
	if s.http == nil {
		return nil
	}
	if err := s.http.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close listener: %w", err)
	}
	return nil
}

// Interrupt makes Execute return after a graceful shutdown. Safe to call
// more than once and before Execute.
func (s *Service) Interrupt(error) {
	s.stopOnce.Do(func() { close(s.stop) })
}
