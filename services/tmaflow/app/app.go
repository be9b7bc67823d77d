// Package app assembles the all-in-one tmaflow: the bus (the embedded
// broker when no external Kafka is configured) and the services of the
// chosen targets, built from the module table in one run group. Tests and
// the benchmarks start it in-process on free ports.
package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/budget"
	"github.com/tmaflow/tmaflow/pkg/bus/backend"
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Options are the process-wide dependencies; the zero value is usable.
type Options struct {
	Logger *slog.Logger
	// Registry gets the process-wide metrics (the bus publisher's, the Go
	// and process collectors), served by the monitor's listener; every
	// other service has a registry of its own. A fresh one when nil.
	Registry *prometheus.Registry
	// Signals makes SIGINT/SIGTERM shut down and SIGHUP reload, as the
	// binary does; in-process tests call Shutdown and Reload instead.
	Signals bool
	// TuneGC runs the GC tuner of -runtime.gc-headroom-mib, as the binary
	// does; it sets the process's GC percentage, which tests leave alone.
	TuneGC bool
}

// App is a configured tmaflow, ready to Run.
type App struct {
	bus    *backend.Bus
	runner *module.Runner
	debug  *service.HTTPServer
}

// New starts the embedded broker if there is one, binds every listener
// and builds the run group; nothing serves requests before Run.
func New(cfg Config, opts Options) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	targets, err := cfg.targets()
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
	a := &App{}
	// What was started before a failure is stopped again.
	defer func() {
		if err != nil {
			err = errors.Join(err, a.close())
		}
	}()
	if a.bus, err = backend.Open(cfg.Bus, logger, reg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	bopts := budget.Options{Dir: cfg.DataDir, Logger: logger.With("component", "budget"), Registerer: reg}
	if b := a.bus.Broker(); b != nil {
		bopts.Relieve = b.ApplyRetention
	}
	guard, err := budget.New(cfg.Budget, bopts)
	if err != nil {
		return nil, err
	}
	// Checked before any service serves.
	guard.Check()
	if a.runner, err = module.NewRunner(a.bus, targets, module.Options{
		Logger:        logger,
		Registry:      reg,
		OwnRegistries: true,
		Signals:       opts.Signals,
		Admit:         guard.Admit,
	}); err != nil {
		return nil, err
	}
	a.runner.Add(guard.Execute, guard.Interrupt)
	if opts.TuneGC {
		if t := cfg.Runtime.Tuner(logger.With("component", "runtime"), reg); t != nil {
			a.runner.Add(t.Execute, t.Interrupt)
		}
	}
	if cfg.DebugListenAddress != "" {
		if a.debug, err = service.Listen(cfg.DebugListenAddress, debugMux(), nil, logger.With("component", "debug")); err != nil {
			return nil, fmt.Errorf("debug server: %w", err)
		}
		a.runner.Add(a.debug.Run, a.debug.Interrupt)
	}
	// Last: the broker stops after everything that talks to it.
	if b := a.bus.Broker(); b != nil {
		a.runner.Add(b.Execute, b.Interrupt)
	}
	// embedded: the bus runs in this process (the embedded Kafka broker,
	// or the embedded NATS server with -bus=nats); brokers are its
	// bootstrap addresses (NATS: server URLs).
	logger.Info("tmaflow configured", "targets", a.runner.Services(), "bus", a.bus.Kind(), "embedded", a.bus.Embedded(), "brokers", a.bus.Brokers())
	return a, nil
}

// Run serves until Shutdown, a signal (with Options.Signals) or a failing
// component. Then, in order: services drain their in-flight requests, the
// publisher flushes into the broker, and the embedded broker writes its
// state to disk.
func (a *App) Run() error {
	err := a.runner.Run()
	return errors.Join(err, a.close())
}

// Shutdown ends Run as SIGTERM does.
func (a *App) Shutdown() { a.runner.Shutdown() }

// Reload re-reads what the services reload on SIGHUP (the registry file,
// the monitor's TLS files, the rule files). Every service is reloaded even
// if one fails; a failing one keeps its previous configuration.
func (a *App) Reload() error { return a.runner.Reload() }

// Addr is the listener address of the named service ("" when it does not
// run or listens nowhere).
func (a *App) Addr(service string) string { return a.runner.Addr(service) }

// MonitorAddr is the address of the monitor's HTTP listener.
func (a *App) MonitorAddr() string { return a.Addr(TargetMonitor) }

// LabelerAddr is the address of the labeler's listener (GET /registry,
// /metrics).
func (a *App) LabelerAddr() string { return a.Addr(TargetLabeler) }

// PersisterAddr is the address of the Prometheus query API.
func (a *App) PersisterAddr() string { return a.Addr(TargetPersister) }

// RulerAddr is the address of the ruler's listener (/api/v1/rules,
// /api/v1/alerts).
func (a *App) RulerAddr() string { return a.Addr(TargetRuler) }

// KafkaBrokers are the bootstrap brokers the services use: the embedded
// broker's address, or the configured Kafka.
func (a *App) KafkaBrokers() []string { return a.bus.Brokers() }

// DebugAddr is the address of the pprof listener ("" when off).
func (a *App) DebugAddr() string {
	if a.debug == nil {
		return ""
	}
	return a.debug.Addr()
}

// Prober is the process's health and readiness: ready while every
// service runs and is ready itself (each listener's /-/ready reports its
// own service).
func (a *App) Prober() *service.Prober { return a.runner.Prober() }

// close releases what New acquired (a no-op for what Run already
// stopped): services, then their consumers, then the publisher, before
// the broker they all talk to.
func (a *App) close() error {
	var errs []error
	if a.runner != nil {
		errs = append(errs, a.runner.Close())
	}
	if a.bus != nil {
		errs = append(errs, a.bus.Close())
	}
	return errors.Join(errs...)
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
