package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Exit ends a command: status 0 on success or after -h, else 1 with the
// error on stderr prefixed by the command's name.
func Exit(name string, err error) {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, name+":", err)
	os.Exit(1)
}

// NewRegistry returns a metrics registry with the Go runtime and process
// collectors, as every service exposes them.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Component is a service run as a run-group actor and reloaded on SIGHUP.
type Component interface {
	Execute() error
	Interrupt(error)
	Reload() error
}

// Run runs c until SIGINT/SIGTERM, the end of ctx, or c's own end, and
// reloads it on SIGHUP.
func Run(ctx context.Context, logger *slog.Logger, p *Prober, c Component) error {
	var g run.Group
	g.Add(SignalActor(logger, p, func() {
		if err := c.Reload(); err != nil {
			logger.Error("reload", "err", err)
			return
		}
		logger.Info("reloaded")
	}))
	g.Add(c.Execute, c.Interrupt)
	ctx, cancel := context.WithCancel(ctx)
	g.Add(func() error {
		<-ctx.Done()
		return nil
	}, func(error) { cancel() })
	return g.Run()
}

// CloseAll closes every closer in order and joins their errors.
func CloseAll(cs ...io.Closer) error {
	var errs []error
	for _, c := range cs {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %T: %w", c, err))
		}
	}
	return errors.Join(errs...)
}

// Defaults fills the dependencies every service's Options share, where
// nil: a private metrics registry, a new prober, a logger that discards,
// and the wall clock.
func Defaults(reg **prometheus.Registry, prober **Prober, logger **slog.Logger, now *func() time.Time) {
	if *reg == nil {
		*reg = prometheus.NewRegistry()
	}
	if *prober == nil {
		*prober = NewProber()
	}
	if *logger == nil {
		*logger = slog.New(slog.DiscardHandler)
	}
	if *now == nil {
		*now = time.Now
	}
}
