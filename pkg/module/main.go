package module

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tmaflow/tmaflow/pkg/bus/backend"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Main runs m as its own binary until SIGINT/SIGTERM or the end of ctx:
// flags (and TMAFLOW_* variables) are the logging, runtime and bus flags
// and m's own, unprefixed; the bus must name an external broker. A first
// argument naming one of m's Commands runs that instead.
func Main(ctx context.Context, m *Module, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if cmd, ok := m.Commands[args[0]]; ok {
			return cmd(m.Name+" "+args[0], args[1:], stdin, stdout, stderr)
		}
	}
	fs := flag.NewFlagSet(m.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		logCfg service.LogConfig
		rtCfg  service.RuntimeConfig
		busCfg backend.Config
	)
	logCfg.RegisterFlags(fs)
	rtCfg.RegisterFlags(fs, m.GCPercent)
	busCfg.RegisterFlags(fs)
	m.RegisterFlags(fs)
	if err := service.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if m.Resolve != nil {
		m.Resolve(Process{ConsumerGroup: busCfg.ConsumerGroup()})
	}
	errs := []error{m.Validate(), rtCfg.Validate(), busCfg.Validate()}
	if m.ConsumerGroupFlagUnused != "" && busCfg.ConsumerGroup() != "" {
		errs = append(errs, fmt.Errorf("%s is not used by the %s: %s", busCfg.ConsumerGroupFlag(), m.Name, m.ConsumerGroupFlagUnused))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logger, err := logCfg.NewLogger(stderr)
	if err != nil {
		return err
	}
	rtCfg.Apply(logger)

	reg := service.NewRegistry()
	b, err := backend.Open(busCfg, logger, reg)
	if err != nil {
		return err
	}
	logger.Info("service configured", "service", m.Name, "bus", b.Kind(), "brokers", b.Brokers())
	r, err := NewRunner(b, []*Module{m}, Options{Logger: logger, Registry: reg, Signals: true})
	if err != nil {
		return errors.Join(err, b.Close())
	}
	if t := rtCfg.Tuner(logger, reg); t != nil {
		r.Add(t.Execute, t.Interrupt)
	}
	done := make(chan struct{})
	r.Add(func() error {
		select {
		case <-ctx.Done():
		case <-done:
		}
		return nil
	}, func(error) { close(done) })
	err = r.Run()
	// The services have stopped: flush what the publisher still holds
	// (their last records, dead letters of the last batches).
	return errors.Join(err, b.Close())
}

// Exit runs m as the process's command (os.Args, standard streams) and
// exits: 0 on success or after -h, else 1 with the error on stderr.
func Exit(m *Module) {
	service.Exit(m.Name, Main(context.Background(), m, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
