// Package app assembles the all-in-one tmaflow: the embedded broker (when no
// external Kafka is configured) and the services of the chosen targets, in
// one run group. Tests start it in-process on free ports.
package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
)

// Options are the process-wide dependencies; the zero value is usable.
type Options struct {
	Logger *slog.Logger
	// Registry gets every component's metrics (and the Go and process
	// collectors); a fresh one when nil.
	Registry *prometheus.Registry
	// Signals makes SIGINT/SIGTERM shut down and SIGHUP reload, as the
	// binary does; in-process tests call Shutdown and Reload instead.
	Signals bool
}

// App is a configured tmaflow, ready to Run.
type App struct {
	logger    *slog.Logger
	prober    *service.Prober
	group     run.Group
	brokers   []string
	broker    *broker.Broker // nil with an external Kafka
	publisher *kafka.Publisher
	monitor   *monitor.Service // nil unless a target
	debug     *service.HTTPServer

	stop     chan struct{}
	stopOnce sync.Once
}

// New starts the embedded broker if there is one, binds every listener
// and builds the run group; nothing serves requests before Run.
func New(cfg Config, opts Options) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	targets, err := cfg.services()
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := registerRuntimeCollectors(reg); err != nil {
		return nil, err
	}
	a := &App{logger: logger, prober: service.NewProber(), stop: make(chan struct{})}
	// What was started before a failure is stopped again.
	defer func() {
		if err != nil {
			err = errors.Join(err, a.close())
		}
	}()

	kcfg := cfg.Kafka
	if cfg.EmbeddedBroker() {
		bcfg := cfg.Broker
		bcfg.DataDir = cfg.BrokerDataDir()
		if a.broker, err = broker.Start(bcfg, logger.With("component", "broker")); err != nil {
			return nil, err
		}
		kcfg.Brokers = a.broker.Addrs()
	}
	a.brokers = slices.Clone(kcfg.Brokers)
	if a.publisher, err = kafka.NewPublisher(kcfg, logger.With("component", "publisher"), reg); err != nil {
		return nil, err
	}

	if opts.Signals {
		a.group.Add(service.SignalActor(logger, a.prober, a.reloadLogged))
	}
	a.group.Add(func() error {
		<-a.stop
		return nil
	}, func(error) { a.Shutdown() })

	if slices.Contains(targets, TargetMonitor) {
		a.monitor, err = monitor.New(cfg.Monitor, monitor.Options{
			Publisher: a.publisher,
			Ping:      a.publisher.Ping,
			Registry:  reg,
			Prober:    a.prober,
			Logger:    logger.With("component", "monitor"),
		})
		if err != nil {
			return nil, fmt.Errorf("monitor: %w", err)
		}
		a.group.Add(a.monitor.Execute, a.monitor.Interrupt)
	}
	if cfg.DebugListenAddress != "" {
		if a.debug, err = service.Listen(cfg.DebugListenAddress, debugMux(), nil, logger.With("component", "debug")); err != nil {
			return nil, fmt.Errorf("debug server: %w", err)
		}
		a.group.Add(a.debug.Run, a.debug.Interrupt)
	}
	if a.broker != nil {
		a.group.Add(a.broker.Execute, a.broker.Interrupt)
	}
	logger.Info("tmaflow configured", "targets", targets, "kafka", a.brokers, "embedded_broker", a.broker != nil)
	return a, nil
}

// Run serves until Shutdown, a signal (with Options.Signals) or a failing
// component. Then, in order: services drain their in-flight requests, the
// publisher flushes into the broker, and the embedded broker writes its
// state to disk.
func (a *App) Run() error {
	a.prober.Healthy()
	err := a.group.Run()
	return errors.Join(err, a.close())
}

// Shutdown ends Run as SIGTERM does.
func (a *App) Shutdown() {
	a.stopOnce.Do(func() {
		a.prober.NotReady("shutting down")
		close(a.stop)
	})
}

// Reload re-reads what the services reload on SIGHUP (the probe registry).
func (a *App) Reload() error {
	if a.monitor == nil {
		return nil
	}
	if err := a.monitor.Reload(); err != nil {
		return fmt.Errorf("reload monitor: %w", err)
	}
	return nil
}

func (a *App) reloadLogged() {
	if err := a.Reload(); err != nil {
		a.logger.Error("reload failed, keeping the previous configuration", "err", err)
		return
	}
	a.logger.Info("reloaded")
}

// MonitorAddr is the address of the monitor's HTTP listener ("" when the
// monitor does not run).
func (a *App) MonitorAddr() string {
	if a.monitor == nil {
		return ""
	}
	return a.monitor.Addr()
}

// KafkaBrokers are the bootstrap brokers the services use: the embedded
// broker's address, or the configured Kafka.
func (a *App) KafkaBrokers() []string { return slices.Clone(a.brokers) }

// DebugAddr is the address of the pprof listener ("" when off).
func (a *App) DebugAddr() string {
	if a.debug == nil {
		return ""
	}
	return a.debug.Addr()
}

// Prober is the process's health and readiness.
func (a *App) Prober() *service.Prober { return a.prober }

// close releases what New acquired, producers before the broker they
// produce to.
func (a *App) close() error {
	var errs []error
	if a.publisher != nil {
		if err := a.publisher.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close publisher: %w", err))
		}
	}
	if a.broker != nil {
		a.broker.Close()
	}
	return errors.Join(errs...)
}

func registerRuntimeCollectors(reg *prometheus.Registry) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return fmt.Errorf("register runtime metrics: %w", err)
		}
	}
	return nil
}

// debugMux serves the pprof profiles on a mux of its own, away from the
// ingest listener.
func debugMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
