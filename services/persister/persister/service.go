// Package persister stores topic-metrics in an embedded Prometheus TSDB,
// optionally forwards it by remote_write, and serves the Prometheus HTTP
// query API over the TSDB, each caller confined to its tenant's series.
//
// Offsets are committed only after the TSDB commit (or the remote
// endpoint's 2xx): delivery is at least once, and storing a re-delivered
// sample again is a no-op, so a crash neither loses nor duplicates samples.
package persister

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Options are the service's dependencies.
type Options struct {
	// Subscriber delivers topic-metrics to the TSDB consumer, in
	// Config.ConsumerGroup. Required. Execute closes it once the consumer
	// stopped.
	Subscriber message.Subscriber
	// RemoteWriteSubscriber delivers topic-metrics to the remote-write
	// consumer, in Config.RemoteWrite.ConsumerGroup, so each consumer
	// commits its own progress. Required with remote-write URLs.
	RemoteWriteSubscriber message.Subscriber
	// Publisher takes dead letters to topic-dlq. Required; it must
	// return nil only once the broker acknowledged.
	Publisher message.Publisher
	// Registry gets the metrics (the TSDB's and PromQL engine's
	// included). Nil: a private registry.
	Registry *prometheus.Registry
	// Prober is marked ready once the consumer caught up. Nil: a new one.
	Prober *service.Prober
	Logger *slog.Logger
	// Now is the default evaluation time of queries and the clock of
	// readiness. Nil: time.Now.
	Now func() time.Time
	// Lag, if set, returns how many records of topic-metrics the TSDB
	// consumer group is behind the partition ends; readiness waits until
	// it is within ready.max-lag. Nil: the lag is taken from the records
	// consumed (Kafka subscriber), or none after ready.settle.
	Lag func(context.Context) (int64, error)
	// HTTPClient sends remote-write requests. Nil: a default client.
	HTTPClient *http.Client
}

// Service is the persister, run as a run-group actor with Execute and
// Interrupt.
type Service struct {
	cfg        Config
	logger     *slog.Logger
	now        func() time.Time
	prober     *service.Prober
	dlq        message.Publisher
	db         *tsdb.DB
	store      *store
	meta       *metadataStore
	engine     *promql.Engine
	parser     parser.Parser
	subs       []message.Subscriber
	consumer   *bus.BatchConsumer // into the TSDB
	rwConsumer *bus.BatchConsumer // remote write, when enabled
	http       *service.HTTPServer
	verifier   verifier // nil without api.auth.registry
	lagHook    func(context.Context) (int64, error)
	lag        *lagTracker
	caught     atomic.Bool
	decoders   decoderPool
	querySlots chan struct{}
	build      buildInfo

	ingest     *ingestMetrics
	apiMetrics *apiMetrics

	stop      chan struct{}
	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

// New reads the registry file (if any), opens the TSDB (replaying its
// WAL), binds the listener and returns the service ready to Execute.
// Execute closes the TSDB when it returns; call Close instead when
// Execute will not run.
func New(cfg Config, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("persister config: %w", err)
	}
	var v verifier
	if cfg.API.AuthRegistry != "" {
		r, err := registry.Open(cfg.API.AuthRegistry, registry.Options{})
		if err != nil {
			return nil, err
		}
		v = r
	}
	return newService(cfg, opts, v)
}

func newService(cfg Config, opts Options, v verifier) (_ *Service, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("persister config: %w", err)
	}
	if opts.Subscriber == nil {
		return nil, errors.New("persister: no subscriber")
	}
	if opts.Publisher == nil {
		return nil, errors.New("persister: no publisher")
	}
	if cfg.RemoteWrite.Enabled() && opts.RemoteWriteSubscriber == nil {
		return nil, errors.New("persister: remote-write.url is set but there is no remote-write subscriber")
	}
	service.Defaults(&opts.Registry, &opts.Prober, &opts.Logger, &opts.Now)
	s := &Service{
		cfg:        cfg,
		logger:     opts.Logger,
		now:        opts.Now,
		prober:     opts.Prober,
		dlq:        opts.Publisher,
		verifier:   v,
		lagHook:    opts.Lag,
		lag:        newLagTracker(),
		querySlots: make(chan struct{}, cfg.Query.MaxConcurrency),
		build:      newBuildInfo(),
		ingest:     newIngestMetrics(opts.Registry),
		apiMetrics: newAPIMetrics(opts.Registry),
		stop:       make(chan struct{}),
	}
	s.prober.NotReady("starting: opening tsdb")

	if s.db, err = openTSDB(cfg.TSDB, s.logger.With("component", "tsdb"), opts.Registry); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.closeDB())
		}
	}()
	s.decoders.encodeLabels = true // for the series cache
	s.store = &store{
		db:       s.db,
		series:   newSeriesCache(s.now, seriesCacheRotation, seriesCacheMaxSeries, opts.Registry),
		onCommit: func(n int) { s.ingest.commitSize.Observe(float64(n)) },
	}
	if s.meta, err = newMetadataStore(cfg.TSDB.Path); err != nil {
		return nil, err
	}
	s.parser = parser.NewParser(parser.Options{})
	s.engine = promql.NewEngine(promql.EngineOpts{
		Logger:        s.logger.With("component", "promql"),
		Reg:           opts.Registry,
		MaxSamples:    cfg.Query.MaxSamples,
		Timeout:       cfg.Query.Timeout,
		LookbackDelta: cfg.Query.LookbackDelta,
		// Subqueries without a step use Prometheus' default evaluation
		// interval.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   s.parser,
	})

	metrics := bus.NewRouterMetrics(opts.Registry)
	consumer := func(name string, sub message.Subscriber, h bus.BatchHandler) (*bus.BatchConsumer, error) {
		s.subs = append(s.subs, sub)
		return bus.NewBatchConsumer(bus.BatchOptions{
			Name:       name,
			Topic:      contract.TopicMetrics,
			Subscriber: sub,
			Handler:    h,
			Config:     cfg.Bus,
			Batch:      cfg.Batch,
			DLQ:        opts.Publisher,
			Logger:     s.logger,
			Metrics:    metrics,
		})
	}
	if s.consumer, err = consumer(StageTSDB, opts.Subscriber, s.handleMetrics); err != nil {
		return nil, err
	}
	if cfg.RemoteWrite.Enabled() {
		rw, err := newRemoteWriter(cfg.RemoteWrite, opts.HTTPClient, newRemoteWriteMetrics(opts.Registry), s.logger.With("component", "remote-write"))
		if err != nil {
			return nil, err
		}
		if s.rwConsumer, err = consumer(StageRemoteWrite, opts.RemoteWriteSubscriber, rw.handle); err != nil {
			return nil, err
		}
	}

	mux := service.OpsMux(opts.Registry, s.prober)
	s.registerAPI(mux)
	if s.http, err = service.Listen(cfg.ListenAddress, mux, nil, s.logger); err != nil {
		return nil, err
	}
	// Per-connection noise (resets, bad requests) is not worth a warning.
	s.http.Server.ErrorLog = slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug)
	s.http.ShutdownTimeout = cfg.ShutdownTimeout
	if !isLoopback(cfg.ListenAddress) {
		if cfg.API.TenantHeader != "" {
			s.logger.Warn("the tenant header is trusted as is: whoever reaches the query API can read any tenant unless an authenticating proxy sets the header", "header", cfg.API.TenantHeader, "addr", s.Addr())
		}
		if cfg.API.DefaultTenant != "" {
			s.logger.Warn("requests without credentials read the default tenant", "tenant", cfg.API.DefaultTenant, "addr", s.Addr())
		}
	}
	return s, nil
}

// isLoopback reports whether addr binds loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Addr is the bound address of the query API (the real port when given
// ":0").
func (s *Service) Addr() string { return s.http.Addr() }

// Handler serves the query API and the ops endpoints, for callers that
// mount it elsewhere.
func (s *Service) Handler() http.Handler { return s.http.Server.Handler }

// CaughtUp reports whether the TSDB consumer caught up after start, for
// embedding binaries that combine the readiness of several services.
func (s *Service) CaughtUp() bool { return s.caught.Load() }

// metadataFlushInterval is how often changed metric metadata is saved.
const metadataFlushInterval = time.Minute

// Execute consumes and serves until Interrupt: then it stops consuming
// (in-flight batches finish or are left for re-delivery), drains in-flight
// queries, saves the metadata and closes the TSDB.
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
			consumers := []*bus.BatchConsumer{s.consumer}
			if s.rwConsumer != nil {
				consumers = append(consumers, s.rwConsumer)
			}
			err := bus.RunBatchConsumers(ctx, consumers...)
			// Offsets of what was acknowledged are committed on close.
			for _, sub := range s.subs {
				if cerr := sub.Close(); cerr != nil {
					s.logger.Warn("close subscriber", "err", cerr)
				}
			}
			if err != nil {
				return fmt.Errorf("run consumers: %w", err)
			}
			return nil
		}, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		g.Add(func() error {
			defer close(done)
			s.watchReady(ctx)
			<-ctx.Done()
			return nil
		}, func(error) {
			cancel()
			<-done
			s.prober.NotReady("shutting down")
		})
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			t := time.NewTicker(metadataFlushInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					if err := s.meta.flush(); err != nil {
						s.logger.Warn("save metric metadata", "err", err)
					}
				}
			}
		}, func(error) { cancel() })
	}
	g.Add(s.serve, func(error) { s.shutdown() })
	err := g.Run()
	return errors.Join(err, s.Close())
}

func (s *Service) serve() error {
	s.logger.Info("persister listening", "addr", s.Addr(), "tsdb", s.cfg.TSDB.Path,
		"remote_write", len(s.cfg.RemoteWrite.URLs), "auth", s.verifier != nil)
	return s.http.Serve()
}

func (s *Service) shutdown() {
	s.http.Interrupt(nil)
}

// Interrupt makes Execute return after a graceful shutdown. Safe to call
// more than once and before Execute.
func (s *Service) Interrupt(error) {
	s.stopOnce.Do(func() { close(s.stop) })
}

// Close saves the metric metadata and closes the TSDB and the listener.
// Execute calls it on return; call it directly only when Execute never
// ran. Safe to call more than once.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if err := s.meta.flush(); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, s.closeDB())
		if err := s.http.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close listener: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

func (s *Service) closeDB() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close tsdb %s: %w", s.cfg.TSDB.Path, err)
	}
	return nil
}

// Reload re-reads the registry file of API credentials; on error the
// previous one stays in force.
func (s *Service) Reload() error {
	if s.verifier == nil {
		return nil
	}
	return s.verifier.Reload()
}
