// Package bridge is the MQTT⇄Kafka bridge: devices publish over MQTT
// (to the embedded broker, or to an external one the bridge subscribes
// to), a mapping file routes each topic to a payload format and labels,
// and each message is acknowledged to its device only after the bus
// stored it. Alerts of topic-alerts go back to MQTT as retained messages.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Options are the service's dependencies. Only Publisher is required.
type Options struct {
	// Publisher receives the records; Publish returns nil only once the
	// broker acknowledged every message.
	Publisher message.Publisher
	// Alerts consumes topic-alerts; nil: alerts are not sent over MQTT.
	Alerts bus.Subscriber
	// AlertsLag is the alert consumer's lag; nil: ready without waiting
	// for it to catch up.
	AlertsLag func(context.Context) (int64, error)
	// Ping checks the bus for /-/ready. Nil: ready without checking.
	Ping     func(context.Context) error
	Registry *prometheus.Registry
	Prober   *service.Prober
	Logger   *slog.Logger
	// Now stamps received messages. Nil: time.Now.
	Now func() time.Time
	// Admit is the process's budget check (module.Deps.Admit): while it
	// refuses, publishes wait unacknowledged. Nil: always admit.
	Admit func() error
}

// Service is the bridge, a run-group actor.
type Service struct {
	cfg      Config
	pipe     *pipeline
	verifier verifier
	embedded *embedded // nil in external mode
	external *external // nil in embedded mode
	router   *message.Router
	alertLag func(context.Context) (int64, error)
	ping     func(context.Context) error
	prober   *service.Prober
	logger   *slog.Logger
	metrics  *metrics
	http     *service.HTTPServer

	stopping   atomic.Bool
	brokerOnce sync.Once
	stop       chan struct{}
	stopOnce   sync.Once
}

// New reads the mapping and registry, binds the listeners and returns the
// service ready to Execute.
func New(cfg Config, opts Options) (*Service, error) {
	var v verifier
	if !cfg.AuthDisabled {
		r, err := registry.Open(cfg.Registry, registry.Options{})
		if err != nil {
			return nil, err
		}
		v = r
	}
	return newService(cfg, opts, v)
}

func newService(cfg Config, opts Options, v verifier) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("bridge config: %w", err)
	}
	if opts.Publisher == nil {
		return nil, errors.New("bridge: no publisher")
	}
	service.Defaults(&opts.Registry, &opts.Prober, &opts.Logger, &opts.Now)
	m, err := loadMapping(cfg.Mapping)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:      cfg,
		verifier: v,
		ping:     opts.Ping,
		prober:   opts.Prober,
		logger:   opts.Logger,
		metrics:  newMetrics(opts.Registry),
		stop:     make(chan struct{}),
	}
	s.prober.NotReady("starting")
	if len(m.Tenants) == 0 {
		s.logger.Warn("no mqtt mapping: every publish is refused", "flag", "mapping")
	}
	s.pipe = newPipeline(cfg, m, opts.Publisher, opts.Now, opts.Admit, s.logger, s.metrics)
	s.mergeSamples()

	var alerts *topicTemplate
	if cfg.Alerts.Topic != "" {
		t, err := parseTopicTemplate(cfg.Alerts.Topic)
		if err != nil {
			return nil, fmt.Errorf("alerts.topic: %w", err)
		}
		alerts = &t
	}
	var send alertSender
	if cfg.External.URL != "" {
		s.external = newExternal(cfg.External, s.pipe, opts.Now, s.metrics, s.logger)
		send = s.external.sendAlert
	} else {
		if s.embedded, err = newEmbedded(cfg, s.pipe, v, alerts, opts.Now, s.metrics, s.logger); err != nil {
			return nil, err
		}
		send = s.embedded.sendAlert
	}
	if alerts != nil && opts.Alerts != nil {
		s.alertLag = opts.AlertsLag
		if s.router, err = bus.NewRouter(bus.RouterOptions{
			Config: cfg.Bus, Stage: Stage, DLQ: opts.Publisher, Logger: s.logger, Registerer: opts.Registry,
		}); err != nil {
			s.closeBroker()
			return nil, err
		}
		s.router.AddConsumerHandler(Stage+"-alerts", contract.TopicAlerts, opts.Alerts, alertHandler(*alerts, send, s.metrics))
	}
	if s.http, err = service.Listen(cfg.ListenAddress, service.OpsMux(opts.Registry, s.prober), nil, s.logger); err != nil {
		s.closeBroker()
		return nil, err
	}
	s.http.Server.ErrorLog = slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug)
	s.http.ShutdownTimeout = cfg.ShutdownTimeout
	return s, nil
}

// Addr is the bound address of the ops listener.
func (s *Service) Addr() string { return s.http.Addr() }

// MQTTAddr is the bound address of the embedded broker's MQTT listener
// ("" in external mode).
func (s *Service) MQTTAddr() string {
	if s.embedded == nil {
		return ""
	}
	return s.embedded.addr("tcp")
}

// MQTTTLSAddr is the bound address of the MQTT TLS listener ("" without).
func (s *Service) MQTTTLSAddr() string {
	if s.embedded == nil {
		return ""
	}
	return s.embedded.addr("tls")
}

// Execute runs the broker side, the bus batches, the alert consumer and
// the ops listener until Interrupt.
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
			s.pipe.batcher.run(ctx)
			return nil
		}, func(error) {
			s.stopping.Store(true)
			s.prober.NotReady("shutting down")
			// Held publishes end unacknowledged before the batches stop.
			s.closeBroker()
			cancel()
		})
	}
	if s.embedded != nil {
		g.Add(func() error {
			if err := s.embedded.serve(); err != nil {
				return err
			}
			s.logger.Info("mqtt broker listening", "addr", s.MQTTAddr(), "tls_addr", s.MQTTTLSAddr(), "auth", s.verifier != nil, "data_dir", s.cfg.MQTT.DataDir)
			<-s.stop
			return nil
		}, func(error) { s.Interrupt(nil) })
	} else {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return s.external.run(ctx) }, func(error) { cancel() })
	}
	if s.router != nil {
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			if err := s.router.Run(ctx); err != nil {
				return fmt.Errorf("run alert router: %w", err)
			}
			if !s.stopping.Load() {
				return errors.New("alert consumer stopped: its subscription ended")
			}
			return nil
		}, func(error) {
			s.stopping.Store(true)
			if err := s.router.Close(); err != nil {
				s.logger.Warn("close alert router", "err", err)
			}
			cancel()
		})
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		g.Add(func() error {
			defer close(done)
			s.watchReady(ctx)
			return nil
		}, func(error) {
			cancel()
			<-done
			s.prober.NotReady("shutting down")
		})
	}
	g.Add(func() error {
		s.logger.Info("bridge listening", "addr", s.Addr(), "external", s.cfg.External.URL)
		return s.http.Serve()
	}, func(error) { s.http.Interrupt(nil) })
	return g.Run()
}

// readyPoll is how often the external broker's state is looked at.
const readyPoll = 250 * time.Millisecond

// watchReady keeps /-/ready: ready while the bus answers, the external
// subscriptions work (external mode) and the alert consumer caught up.
func (s *Service) watchReady(ctx context.Context) {
	if s.router != nil {
		select {
		case <-s.router.Running():
		case <-ctx.Done():
			return
		}
		if s.alertLag != nil && !s.waitAlertsCaughtUp(ctx) {
			return
		}
	}
	busProblem := ""
	pingBus := func() {
		if s.ping == nil {
			s.metrics.brokerUp.Set(1)
			return
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
		err := s.ping(pctx)
		cancel()
		switch {
		case ctx.Err() != nil:
		case err != nil:
			if busProblem == "" {
				s.logger.Warn("bus unreachable, not ready", "err", err)
			}
			busProblem = "bus unreachable: " + err.Error()
			s.metrics.brokerUp.Set(0)
		default:
			busProblem = ""
			s.metrics.brokerUp.Set(1)
		}
	}
	pingBus()
	lastPing := time.Now()
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		problem := busProblem
		if problem == "" && s.external != nil {
			problem = s.external.notReady()
		}
		if problem == "" {
			s.prober.Ready()
		} else {
			s.prober.NotReady(problem)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastPing) >= s.cfg.ReadyCheckInterval {
			pingBus()
			lastPing = time.Now()
		}
	}
}

// waitAlertsCaughtUp waits until the alert consumer is near the end of
// topic-alerts, so devices get current alerts; false if ctx ended first.
func (s *Service) waitAlertsCaughtUp(ctx context.Context) bool {
	lag, ok := service.CatchUp{
		Config: s.cfg.Ready,
		Lag: func(ctx context.Context) (int64, bool, error) {
			lag, err := s.alertLag(ctx)
			return lag, err == nil, err
		},
		Topics: contract.TopicAlerts,
		Prober: s.prober,
	}.Wait(ctx)
	if ok {
		s.logger.Info("alert consumer caught up", "lag", lag)
	}
	return ok
}

// Interrupt makes Execute return. Safe to call more than once.
func (s *Service) Interrupt(error) {
	s.stopOnce.Do(func() { close(s.stop) })
}

// closeBroker stops the MQTT side once.
func (s *Service) closeBroker() {
	s.brokerOnce.Do(func() {
		if s.embedded != nil {
			s.embedded.close()
		}
		if s.external != nil {
			s.external.close()
		}
	})
}

// mergeSamples lets batches share sample records unless the registry's
// label rules read the MQTT topic.
func (s *Service) mergeSamples() {
	if s.verifier == nil {
		s.pipe.mergeFor(nil)
		return
	}
	s.pipe.mergeFor(s.verifier.File())
}

// loadMapping reads the mapping file; without one, no tenant.
func loadMapping(path string) (*Mapping, error) {
	if path == "" {
		return &Mapping{Tenants: map[string]*TenantMapping{}}, nil
	}
	return LoadMapping(path)
}

// Reload re-reads the mapping and the registry; on error the previous
// ones stay in force.
func (s *Service) Reload() error {
	var errs []error
	m, err := loadMapping(s.cfg.Mapping)
	if err == nil {
		s.pipe.mapping.Store(m)
	}
	errs = append(errs, err)
	if s.verifier != nil {
		errs = append(errs, s.verifier.Reload())
		s.mergeSamples()
	}
	if err := errors.Join(errs...); err != nil {
		s.metrics.reloads.WithLabelValues("failure").Inc()
		return fmt.Errorf("reload bridge: %w", err)
	}
	s.metrics.reloads.WithLabelValues("success").Inc()
	return nil
}

// Close releases the listeners of a service whose Execute never ran;
// after Execute it only closes what is left.
func (s *Service) Close() error {
	s.closeBroker()
	if err := s.http.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close bridge listener: %w", err)
	}
	return nil
}
