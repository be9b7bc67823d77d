// Package monitor is the ingest endpoint: POST /monitor takes one TMA
// message or a JSON array of them, validates all, authenticates the probe
// and publishes every message to topic-monitor, answering 200 only once
// the broker acknowledged every record. On the same listener,
// POST /api/v1/write takes Prometheus remote write 1.0 and 2.0, and
// /api/v1/import/prometheus and the Pushgateway-style /metrics/job/…
// take Prometheus text and OpenMetrics bodies, all published as sample
// batches to topic-samples under the same acknowledgement.
package monitor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Options are the service's dependencies. Only Publisher is required.
type Options struct {
	// Publisher receives the records. Publish must return nil only once
	// the broker acknowledged every message; the service never reuses a
	// payload it handed over, so publishers may keep them.
	Publisher message.Publisher
	// Ping checks the broker for /-/ready. Nil: ready as soon as serving.
	Ping func(context.Context) error
	// Registry gets the metrics. Nil: a private registry.
	Registry *prometheus.Registry
	// Prober is marked ready and not ready by the service, so it should be
	// this service's own. Nil: a new one.
	Prober *service.Prober
	Logger *slog.Logger
	// Now stamps the received-at header and times publishes. Nil: time.Now.
	Now func() time.Time
	// Admit is the process's budget check (module.Deps.Admit): an error
	// refuses ingest, 429 for a *budget.Refusal of 429, else 503. Nil:
	// always admit.
	Admit func() error
}

// verifier checks probe credentials (*registry.Registry).
type verifier interface {
	Verify(user, secret string) (registry.Probe, bool)
	Reload() error
}

// Service is the monitor HTTP service, run as a run-group actor with
// Execute and Interrupt.
type Service struct {
	cfg      Config
	pub      message.Publisher
	ping     func(context.Context) error
	prober   *service.Prober
	logger   *slog.Logger
	now      func() time.Time
	metrics  *metrics
	verifier verifier // nil when auth is disabled
	// admitBudget is the process's budget check (Options.Admit).
	admitBudget func() error
	tls         *tlsFiles
	http        *service.HTTPServer
	ops         *http.ServeMux
	resp        *responses
	limiter     *tenantLimiter // nil: no samples/s limit
	metadata    metadataCache  // remote write 1.0 metadata by tenant

	sem      chan struct{} // in-flight slots
	bufs     sync.Pool     // *[]byte request bodies
	pingNow  chan struct{} // asks the readiness loop for a check now
	stop     chan struct{}
	stopOnce sync.Once
}

// New reads the registry and TLS files, binds the listener and returns the
// service ready to Execute.
func New(cfg Config, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("monitor config: %w", err)
	}
	var v verifier
	if !cfg.Auth.Disabled {
		r, err := registry.Open(cfg.Auth.Registry, registry.Options{})
		if err != nil {
			return nil, err
		}
		v = r
	}
	return newService(cfg, opts, v)
}

func newService(cfg Config, opts Options, v verifier) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("monitor config: %w", err)
	}
	if opts.Publisher == nil {
		return nil, errors.New("monitor: no publisher")
	}
	service.Defaults(&opts.Registry, &opts.Prober, &opts.Logger, &opts.Now)
	if opts.Admit == nil {
		opts.Admit = func() error { return nil }
	}
	s := &Service{
		cfg:         cfg,
		pub:         opts.Publisher,
		ping:        opts.Ping,
		prober:      opts.Prober,
		logger:      opts.Logger,
		now:         opts.Now,
		metrics:     newMetrics(opts.Registry),
		verifier:    v,
		resp:        newResponses(cfg),
		limiter:     newTenantLimiter(cfg.Limits, opts.Now),
		admitBudget: opts.Admit,
		sem:         make(chan struct{}, cfg.MaxInflight),
		pingNow:     make(chan struct{}, 1),
		stop:        make(chan struct{}),
	}
	s.bufs.New = func() any { b := make([]byte, 0, initialBufSize); return &b }
	s.ops = service.OpsMux(opts.Registry, s.prober)

	var tlsCfg *tls.Config
	if cfg.TLS.Enabled() {
		t, err := newTLSFiles(cfg.TLS)
		if err != nil {
			return nil, err
		}
		s.tls = t
		tlsCfg = t.serverConfig()
	}
	srv, err := service.Listen(cfg.ListenAddress, http.HandlerFunc(s.route), tlsCfg, s.logger)
	if err != nil {
		return nil, err
	}
	// Bounds a slow sender's hold on an in-flight slot.
	srv.Server.ReadTimeout = time.Minute
	// TLS handshake failures and the like are per-connection noise.
	srv.Server.ErrorLog = slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug)
	srv.ShutdownTimeout = cfg.ShutdownTimeout
	s.http = srv

	if cfg.unauthenticatedExposure() {
		s.logger.Warn("insecure: accepting data without authentication on a non-loopback address, anyone who reaches it can write", "addr", s.Addr())
	} else if !cfg.Auth.Disabled && !cfg.TLS.Enabled() && !isLoopback(cfg.ListenAddress) {
		s.logger.Warn("probe secrets travel unencrypted: basic auth without tls on a non-loopback address", "addr", s.Addr())
	}
	return s, nil
}

// Path is the ingest endpoint.
const Path = "/monitor"

// route sends ingest requests (TMA, remote write, text pushes) straight to
// their handler and the rest through the ops mux.
func (s *Service) route(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == Path {
		s.serveMonitor(w, r)
		return
	}
	if r.URL.Path == ProbeConfigPath {
		s.serveProbeConfig(w, r)
		return
	}
	if s.servePrometheus(w, r) {
		return
	}
	s.ops.ServeHTTP(w, r)
}

// Handler serves POST /monitor and the ops endpoints, for callers that
// mount it elsewhere (tests, an embedding binary's own listener).
func (s *Service) Handler() http.Handler { return http.HandlerFunc(s.route) }

// Addr is the bound listen address (the real port when given ":0").
func (s *Service) Addr() string { return s.http.Addr() }

// Execute serves until Interrupt, then stops accepting, waits for
// in-flight requests (at most shutdown-timeout) and returns. Close the
// publisher after it returned.
func (s *Service) Execute() error {
	s.prober.Healthy()
	var g run.Group
	// First actor: ends the group on Interrupt.
	g.Add(func() error {
		<-s.stop
		return nil
	}, func(error) { s.Interrupt(nil) })
	// Readiness follows the broker until shutdown, then stays not ready
	// while the server drains.
	{
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		g.Add(func() error {
			defer close(done)
			s.watchBroker(ctx)
			return nil
		}, func(error) {
			cancel()
			<-done
			s.prober.NotReady("shutting down")
		})
	}
	g.Add(s.serve, func(error) { s.shutdown() })
	return g.Run()
}

func (s *Service) serve() error {
	s.logger.Info("monitor listening", "addr", s.Addr(), "tls", s.tls != nil, "auth", s.verifier != nil)
	return s.http.Serve()
}

// shutdown returns once in-flight requests finished, or after the
// shutdown timeout with the rest cut off.
func (s *Service) shutdown() {
	s.http.Interrupt(nil)
}

// Interrupt makes Execute return after a graceful shutdown. Safe to call
// more than once and before Execute.
func (s *Service) Interrupt(error) {
	s.stopOnce.Do(func() { close(s.stop) })
}

// Reload re-reads the registry and TLS files; on error the previous ones
// stay in force.
func (s *Service) Reload() error {
	var errs []error
	if s.verifier != nil {
		errs = append(errs, s.verifier.Reload())
	}
	if s.tls != nil {
		errs = append(errs, s.tls.load())
	}
	if err := errors.Join(errs...); err != nil {
		s.metrics.reloads.WithLabelValues("failure").Inc()
		return fmt.Errorf("reload monitor: %w", err)
	}
	s.metrics.reloads.WithLabelValues("success").Inc()
	return nil
}

// watchBroker pings the broker every ready-check-interval, and at once
// after a failed publish, marking the prober ready or not.
func (s *Service) watchBroker(ctx context.Context) {
	if s.ping == nil {
		s.prober.Ready()
		s.metrics.brokerUp.Set(1)
		<-ctx.Done()
		return
	}
	first, up := true, false
	check := func() {
		pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
		err := s.ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return // shutting down: the interrupt sets the state
		}
		if err == nil {
			if first || !up {
				s.logger.Info("broker reachable, ready")
			}
			s.prober.Ready()
			s.metrics.brokerUp.Set(1)
		} else {
			if first || up {
				s.logger.Warn("broker unreachable, not ready", "err", err)
			}
			s.prober.NotReady("broker unreachable: " + err.Error())
			s.metrics.brokerUp.Set(0)
		}
		first, up = false, err == nil
	}
	check()
	t := time.NewTicker(s.cfg.ReadyCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		case <-s.pingNow:
			check()
		}
	}
}

// checkBrokerSoon asks for a readiness check without waiting for it.
func (s *Service) checkBrokerSoon() {
	select {
	case s.pingNow <- struct{}{}:
	default:
	}
}
