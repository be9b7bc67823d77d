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
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/labeler/labeler"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
	"github.com/tmaflow/tmaflow/services/persister/persister"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
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
	logger *slog.Logger
	// prober is the whole process's: ready when every service's own
	// prober is (see watchReady).
	prober    *service.Prober
	group     run.Group
	brokers   []string
	broker    *broker.Broker // nil with an external Kafka
	publisher *kafka.Publisher
	// subscribers are closed after the services stopped, before the
	// publisher.
	subscribers []*kafka.Subscriber
	monitor     *monitor.Service   // nil unless a target
	labeler     *labeler.Service   // nil unless a target
	persister   *persister.Service // nil unless a target
	ruler       *ruler.Service     // nil unless a target
	components  []component
	debug       *service.HTTPServer

	// readyMu orders watchReady's updates of prober with Shutdown's, so a
	// check racing Shutdown cannot mark the stopping process ready.
	readyMu  sync.Mutex
	stopping bool
	stop     chan struct{}
	stopOnce sync.Once
}

// component is a running service and its own readiness.
type component struct {
	name   string
	prober *service.Prober
}

// readyInterval is how often the services' readiness is combined.
const readyInterval = 50 * time.Millisecond

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

	rc := cfg.resolved()
	if slices.Contains(targets, TargetMonitor) {
		p := a.addComponent(TargetMonitor)
		a.monitor, err = monitor.New(rc.Monitor, monitor.Options{
			Publisher: a.publisher,
			Ping:      a.publisher.Ping,
			Registry:  reg,
			Prober:    p,
			Logger:    logger.With("component", TargetMonitor),
		})
		if err != nil {
			return nil, fmt.Errorf("monitor: %w", err)
		}
		a.group.Add(a.monitor.Execute, a.monitor.Interrupt)
	}
	if slices.Contains(targets, TargetLabeler) {
		if err := a.startLabeler(rc, kcfg); err != nil {
			return nil, err
		}
	}
	if slices.Contains(targets, TargetPersister) {
		if err := a.startPersister(rc, kcfg); err != nil {
			return nil, err
		}
	}
	if slices.Contains(targets, TargetRuler) {
		if err := a.startRuler(rc, kcfg); err != nil {
			return nil, err
		}
	}
	a.group.Add(a.watchReady())
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

// addComponent gives a service its own prober, combined into the
// process's by watchReady.
func (a *App) addComponent(name string) *service.Prober {
	p := service.NewProber()
	a.components = append(a.components, component{name: name, prober: p})
	return p
}

// startLabeler builds the labeler with a subscriber in its own consumer
// group. Its metrics go to a registry of its own, served on its listener:
// the labeler and the persister both register the bus router's and the
// Kafka subscriber's metrics under the same names.
func (a *App) startLabeler(cfg Config, kcfg kafka.Config) error {
	reg, err := componentRegistry()
	if err != nil {
		return err
	}
	logger := a.logger.With("component", TargetLabeler)
	kcfg.ConsumerGroup = cfg.LabelerConsumerGroup
	sub, err := kafka.NewSubscriber(kcfg, logger, reg)
	if err != nil {
		return fmt.Errorf("labeler: %w", err)
	}
	a.subscribers = append(a.subscribers, sub)
	if a.labeler, err = labeler.New(cfg.Labeler, labeler.Options{
		Subscriber: sub,
		Publisher:  a.publisher,
		Registry:   reg,
		Prober:     a.addComponent(TargetLabeler),
		Logger:     logger,
		Lag:        sub.LagOf(contract.TopicMonitor, contract.TopicSamples),
	}); err != nil {
		return fmt.Errorf("labeler: %w", err)
	}
	a.group.Add(a.labeler.Execute, a.labeler.Interrupt)
	return nil
}

// startPersister builds the persister with a subscriber in its TSDB
// consumer group and, with remote-write URLs, one in the remote-write
// group.
func (a *App) startPersister(cfg Config, kcfg kafka.Config) error {
	reg, err := componentRegistry()
	if err != nil {
		return err
	}
	logger := a.logger.With("component", TargetPersister)
	kcfg.ConsumerGroup = cfg.Persister.ConsumerGroup
	// Both consumers register the subscriber metrics: a consumer label
	// tells them apart.
	sub, err := kafka.NewSubscriber(kcfg, logger, prometheus.WrapRegistererWith(prometheus.Labels{"consumer": "tsdb"}, reg))
	if err != nil {
		return fmt.Errorf("persister: %w", err)
	}
	a.subscribers = append(a.subscribers, sub)
	opts := persister.Options{
		Subscriber: sub,
		Publisher:  a.publisher,
		Registry:   reg,
		Prober:     a.addComponent(TargetPersister),
		Logger:     logger,
		Lag:        sub.LagOf(contract.TopicMetrics),
	}
	if cfg.Persister.RemoteWrite.Enabled() {
		kcfg.ConsumerGroup = cfg.Persister.RemoteWrite.ConsumerGroup
		rwReg := prometheus.WrapRegistererWith(prometheus.Labels{"consumer": "remote-write"}, reg)
		rwSub, err := kafka.NewSubscriber(kcfg, logger.With("consumer", "remote-write"), rwReg)
		if err != nil {
			return fmt.Errorf("persister: %w", err)
		}
		a.subscribers = append(a.subscribers, rwSub)
		opts.RemoteWriteSubscriber = rwSub
	}
	if a.persister, err = persister.New(cfg.Persister, opts); err != nil {
		return fmt.Errorf("persister: %w", err)
	}
	a.group.Add(a.persister.Execute, a.persister.Interrupt)
	return nil
}

// startRuler builds the ruler. It reads every partition of topic-metrics
// without a consumer group, from the start of its window.
func (a *App) startRuler(cfg Config, kcfg kafka.Config) error {
	reg, err := componentRegistry()
	if err != nil {
		return err
	}
	kcfg.ConsumerGroup = ""
	if a.ruler, err = ruler.New(cfg.Ruler, ruler.Options{
		Publisher: a.publisher,
		Kafka:     kcfg,
		Registry:  reg,
		Prober:    a.addComponent(TargetRuler),
		Logger:    a.logger.With("component", TargetRuler),
	}); err != nil {
		return fmt.Errorf("ruler: %w", err)
	}
	a.group.Add(a.ruler.Execute, a.ruler.Interrupt)
	return nil
}

// componentRegistry is a service's own metrics registry, with the Go and
// process metrics so that each listener's /metrics stands alone.
func componentRegistry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := registerRuntimeCollectors(reg); err != nil {
		return nil, err
	}
	return reg, nil
}

// watchReady is the actor that makes the process ready while every
// service is, so one readiness answers for the whole process.
func (a *App) watchReady() (execute func() error, interrupt func(error)) {
	done := make(chan struct{})
	return func() error {
			t := time.NewTicker(readyInterval)
			defer t.Stop()
			for {
				a.updateReady()
				select {
				case <-done:
					return nil
				case <-t.C:
				}
			}
		}, func(error) {
			close(done)
		}
}

func (a *App) updateReady() {
	a.readyMu.Lock()
	defer a.readyMu.Unlock()
	if a.stopping {
		return
	}
	for _, c := range a.components {
		if !c.prober.IsReady() {
			a.prober.NotReady("waiting for " + c.name)
			return
		}
	}
	a.prober.Ready()
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
		a.readyMu.Lock()
		a.stopping = true
		a.prober.NotReady("shutting down")
		a.readyMu.Unlock()
		close(a.stop)
	})
}

// Reload re-reads what the services reload on SIGHUP (the registry file,
// the monitor's TLS files). Every service is reloaded even if one fails;
// a failing one keeps its previous configuration.
func (a *App) Reload() error {
	var errs []error
	if a.monitor != nil {
		if err := a.monitor.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("reload monitor: %w", err))
		}
	}
	if a.labeler != nil {
		if err := a.labeler.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("reload labeler: %w", err))
		}
	}
	if a.ruler != nil {
		if err := a.ruler.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("reload ruler: %w", err))
		}
	}
	if a.persister != nil {
		// Already says "reload persister".
		if err := a.persister.Reload(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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

// LabelerAddr is the address of the labeler's listener (GET /registry,
// /metrics); "" when the labeler does not run or listens nowhere.
func (a *App) LabelerAddr() string {
	if a.labeler == nil {
		return ""
	}
	return a.labeler.Addr()
}

// PersisterAddr is the address of the Prometheus query API ("" when the
// persister does not run).
func (a *App) PersisterAddr() string {
	if a.persister == nil {
		return ""
	}
	return a.persister.Addr()
}

// KafkaBrokers are the bootstrap brokers the services use: the embedded
// broker's address, or the configured Kafka.
func (a *App) KafkaBrokers() []string { return slices.Clone(a.brokers) }

// RulerAddr is the address of the ruler's listener (/api/v1/rules,
// /api/v1/alerts; "" when the ruler does not run).
func (a *App) RulerAddr() string {
	if a.ruler == nil {
		return ""
	}
	return a.ruler.Addr()
}

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
func (a *App) Prober() *service.Prober { return a.prober }

// close releases what New acquired (a no-op for what the run group
// already stopped): services, then consumers, then producers, before the
// broker they all talk to.
func (a *App) close() error {
	var errs []error
	if a.ruler != nil {
		if err := a.ruler.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close ruler: %w", err))
		}
	}
	if a.persister != nil {
		if err := a.persister.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close persister: %w", err))
		}
	}
	if a.labeler != nil {
		if err := a.labeler.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close labeler: %w", err))
		}
	}
	for _, s := range a.subscribers {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close subscriber: %w", err))
		}
	}
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
