// Package app is the edge probe: collectors sample host metrics,
// local endpoints, commands and files into an on-disk queue, and
// forwarders ship it to tmaflow's monitor (TMA JSON), to any Prometheus
// remote_write receiver and to MQTT; the configuration is a local file
// or a signed remote one with automatic rollback.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// Options are the service's dependencies; nil ones get defaults.
type Options struct {
	Registry *prometheus.Registry
	Prober   *service.Prober
	Logger   *slog.Logger
	Now      func() time.Time
}

// Service is the probe as a run-group actor.
type Service struct {
	cfg    Config
	opts   Options
	logger *slog.Logger
	http   *service.HTTPServer
	m      *serviceMetrics
	cur    atomic.Pointer[pipeline]

	reload   chan chan error
	stop     chan struct{}
	stopOnce sync.Once
}

type serviceMetrics struct {
	info    *prometheus.GaugeVec
	results *prometheus.CounterVec
	applied prometheus.Gauge
}

// pipelineCollector serves the running pipeline's metrics.
type pipelineCollector struct{ s *Service }

func (c pipelineCollector) Describe(chan<- *prometheus.Desc) {}

func (c pipelineCollector) Collect(ch chan<- prometheus.Metric) {
	if p := c.s.cur.Load(); p != nil {
		p.reg.Collect(ch)
	}
}

// New checks the configuration file and binds the listener.
func New(cfg Config, opts Options) (*Service, error) {
	service.Defaults(&opts.Registry, &opts.Prober, &opts.Logger, &opts.Now)
	if _, err := ReadFileConfig(cfg.ConfigFile); err != nil {
		return nil, err
	}
	f := promauto.With(opts.Registry)
	s := &Service{
		cfg: cfg, opts: opts, logger: opts.Logger,
		m: &serviceMetrics{
			info: f.NewGaugeVec(prometheus.GaugeOpts{Name: "probe_config_info",
				Help: "The configuration in force (1), by version and source (local, remote)."}, []string{"version", "source"}),
			results: f.NewCounterVec(prometheus.CounterOpts{Name: "probe_config_results_total",
				Help: "Configuration changes by result: applied, invalid, bad_signature, rolled_back, fetch_failed."}, []string{"result"}),
			applied: f.NewGauge(prometheus.GaugeOpts{Name: "probe_config_applied_timestamp_seconds",
				Help: "When the configuration in force was applied."}),
		},
		reload: make(chan chan error),
		stop:   make(chan struct{}),
	}
	if err := opts.Registry.Register(pipelineCollector{s}); err != nil {
		return nil, fmt.Errorf("register pipeline metrics: %w", err)
	}
	if cfg.ListenAddress != "" {
		h, err := service.Listen(cfg.ListenAddress, service.OpsMux(opts.Registry, opts.Prober), nil, opts.Logger)
		if err != nil {
			return nil, err
		}
		s.http = h
	}
	return s, nil
}

// Addr is the listener's address ("" without one).
func (s *Service) Addr() string {
	if s.http == nil {
		return ""
	}
	return s.http.Addr()
}

// Execute runs until Interrupt.
func (s *Service) Execute() error {
	s.opts.Prober.Healthy()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 2)
	if s.http != nil {
		go func() { errc <- s.http.Serve() }()
	}
	go func() { errc <- s.manage(ctx) }()
	var err error
	select {
	case <-s.stop:
	case err = <-errc:
	}
	s.opts.Prober.NotReady("shutting down")
	cancel()
	if s.http != nil {
		s.http.Interrupt(nil)
	}
	n := 1
	if s.http != nil {
		n = 2
	}
	if err != nil {
		n--
	}
	for range n {
		err = errors.Join(err, <-errc)
	}
	return err
}

// Interrupt stops Execute.
func (s *Service) Interrupt(error) { s.stopOnce.Do(func() { close(s.stop) }) }

// Reload re-reads the local configuration file; on an error the running
// configuration stays.
func (s *Service) Reload() error {
	done := make(chan error, 1)
	select {
	case s.reload <- done:
		return <-done
	case <-s.stop:
		return errors.New("probe stopping")
	}
}
