package module

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Backend is the open bus a runner shares among its services
// (*backend.Bus).
type Backend interface {
	Publisher() message.Publisher
	Ping(ctx context.Context) error
	Subscriber(group string, logger *slog.Logger, reg prometheus.Registerer) (bus.Subscriber, error)
	Reader(logger *slog.Logger) (bus.Reader, error)
}

// Options configure a Runner; the zero value is usable.
type Options struct {
	Logger *slog.Logger
	// Registry is the process-wide registry (the bus publisher's metrics
	// and the Go and process collectors). Nil: a new one.
	Registry *prometheus.Registry
	// OwnRegistries gives every service but those with ProcessMetrics a
	// registry of its own, with the Go and process collectors, served on
	// its listener: services of one process register metrics of the same
	// names (the bus router's, the subscriber's).
	OwnRegistries bool
	// Signals makes SIGINT/SIGTERM shut down and SIGHUP reload; in-process
	// callers use Shutdown and Reload instead.
	Signals bool
	// Admit is the process's budget check for ingest (Deps.Admit). Nil:
	// always admit.
	Admit func() error
}

// Runner runs services in one run group: it builds them from their
// modules, makes the process ready while every service is, reloads them
// together and closes them in order.
type Runner struct {
	logger *slog.Logger
	// prober is the process's: ready while every service's own is.
	prober *service.Prober
	group  run.Group
	units  []*unit

	// readyMu orders watchReady's updates of prober with Shutdown's, so a
	// check racing Shutdown cannot mark the stopping process ready.
	readyMu  sync.Mutex
	stopping bool
	stop     chan struct{}
	stopOnce sync.Once
}

// unit is a built service.
type unit struct {
	name   string
	svc    Service
	prober *service.Prober
	bus    *serviceBus
}

// readyInterval is how often the services' readiness is combined.
const readyInterval = 50 * time.Millisecond

// NewRunner builds the services of mods, in order, on b. What was built
// before a failure is closed again.
func NewRunner(b Backend, mods []*Module, opts Options) (_ *Runner, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Admit == nil {
		opts.Admit = func() error { return nil }
	}
	if opts.Registry == nil {
		opts.Registry = service.NewRegistry()
	} else if err := RegisterRuntimeMetrics(opts.Registry); err != nil {
		return nil, err
	}
	r := &Runner{logger: opts.Logger, prober: service.NewProber(), stop: make(chan struct{})}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	if opts.Signals {
		r.group.Add(service.SignalActor(r.logger, r.prober, r.reloadLogged))
	}
	r.group.Add(func() error {
		<-r.stop
		return nil
	}, func(error) { r.Shutdown() })
	for _, m := range mods {
		if err := r.start(b, m, opts); err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	r.group.Add(r.watchReady())
	return r, nil
}

func (r *Runner) start(b Backend, m *Module, opts Options) error {
	reg := opts.Registry
	if opts.OwnRegistries && !m.ProcessMetrics {
		reg = service.NewRegistry()
	}
	logger := r.logger.With("component", m.Name)
	u := &unit{name: m.Name, prober: service.NewProber(), bus: &serviceBus{backend: b, logger: logger, reg: reg}}
	r.units = append(r.units, u)
	svc, err := m.New(Deps{Bus: u.bus, Registry: reg, Prober: u.prober, Logger: logger, Admit: opts.Admit})
	if err != nil {
		return err
	}
	u.svc = svc
	r.group.Add(svc.Execute, svc.Interrupt)
	return nil
}

// Add adds an actor to the run group (an embedded broker, a debug
// server), interrupted after the services.
func (r *Runner) Add(execute func() error, interrupt func(error)) {
	r.group.Add(execute, interrupt)
}

// Run serves until Shutdown, a signal (with Options.Signals) or a failing
// actor, then closes the services.
func (r *Runner) Run() error {
	r.prober.Healthy()
	err := r.group.Run()
	return errors.Join(err, r.Close())
}

// Shutdown ends Run as SIGTERM does: every service turns not ready first.
func (r *Runner) Shutdown() {
	r.stopOnce.Do(func() {
		r.readyMu.Lock()
		r.stopping = true
		r.prober.NotReady("shutting down")
		for _, u := range r.units {
			u.prober.NotReady("shutting down")
		}
		r.readyMu.Unlock()
		close(r.stop)
	})
}

// Reload reloads every service, even when one fails; a failing one keeps
// its previous configuration.
func (r *Runner) Reload() error {
	var errs []error
	for _, u := range r.units {
		if u.svc == nil {
			continue
		}
		if err := u.svc.Reload(); err != nil {
			errs = append(errs, fmt.Errorf("reload %s: %w", u.name, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Runner) reloadLogged() {
	if err := r.Reload(); err != nil {
		r.logger.Error("reload failed, keeping the previous configuration", "err", err)
		return
	}
	r.logger.Info("reloaded")
}

// Addr is the listener address of the named service ("" when it does not
// run or listens nowhere).
func (r *Runner) Addr(name string) string {
	for _, u := range r.units {
		if u.name == name && u.svc != nil {
			return u.svc.Addr()
		}
	}
	return ""
}

// Services are the names of the services, in start order.
func (r *Runner) Services() []string {
	out := make([]string, 0, len(r.units))
	for _, u := range r.units {
		out = append(out, u.name)
	}
	return out
}

// Prober is the process's health and readiness: ready while every service
// is (each listener's /-/ready reports its own service).
func (r *Runner) Prober() *service.Prober { return r.prober }

// Close releases what the services hold, last started first: the service,
// then its subscribers. It is a no-op for what is closed already.
func (r *Runner) Close() error {
	var errs []error
	for _, u := range slices.Backward(r.units) {
		if c, ok := u.svc.(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close %s: %w", u.name, err))
			}
		}
		u.svc = nil
		if err := u.bus.close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", u.name, err))
		}
	}
	return errors.Join(errs...)
}

// watchReady is the actor that makes the process ready while every
// service is, so one readiness answers for the whole process.
func (r *Runner) watchReady() (execute func() error, interrupt func(error)) {
	done := make(chan struct{})
	return func() error {
			t := time.NewTicker(readyInterval)
			defer t.Stop()
			for {
				r.updateReady()
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

func (r *Runner) updateReady() {
	r.readyMu.Lock()
	defer r.readyMu.Unlock()
	if r.stopping {
		return
	}
	for _, u := range r.units {
		if !u.prober.IsReady() {
			r.prober.NotReady("waiting for " + u.name)
			return
		}
	}
	r.prober.Ready()
}

// RegisterRuntimeMetrics registers the Go and process collectors on reg,
// unless there already.
func RegisterRuntimeMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
				continue
			}
			return fmt.Errorf("register runtime metrics: %w", err)
		}
	}
	return nil
}
