package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/oklog/run"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// Name is the probe's name: its binary's and its flag prefix's.
const Name = "probe"

// GCPercent is the probe's default GOGC: a small heap on small hosts.
const GCPercent = 50

// Command is a subcommand of the probe's binary.
type Command func(name string, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// Commands are the probe binary's subcommands.
func Commands() map[string]Command {
	return map[string]Command{"keygen": keygenCommand, "sign": signCommand}
}

// Main runs the probe as its own binary until SIGINT/SIGTERM or the end
// of ctx; SIGHUP re-reads the configuration file. It is module.Main
// without the bus: module.Main requires -kafka.brokers, and importing
// pkg/module links the Kafka clients and the embedded broker, which the
// edge binary must not carry.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		if cmd, ok := Commands()[args[0]]; ok {
			return cmd(Name+" "+args[0], args[1:], stdin, stdout, stderr)
		}
	}
	fs := flag.NewFlagSet(Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		logCfg   service.LogConfig
		rtCfg    service.RuntimeConfig
		cfg      Config
		maxProcs int
	)
	logCfg.RegisterFlags(fs)
	rtCfg.RegisterFlags(fs, GCPercent)
	cfg.RegisterFlags(fs)
	// One P: the probe's work is small and mostly waiting, and with more
	// the scheduler's spinning threads cost more CPU than the sampling
	// (2.7 % instead of 4.5 % of a core at 100 ms × 226 series).
	fs.IntVar(&maxProcs, "max-procs", 1, "Threads running Go code at once (GOMAXPROCS; 0: one per core). The GOMAXPROCS environment variable wins over the default.")
	if err := service.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if maxProcs < 0 {
		return fmt.Errorf("max-procs must be ≥ 0, got %d", maxProcs)
	}
	if err := errors.Join(cfg.Validate(), rtCfg.Validate()); err != nil {
		return err
	}
	logger, err := logCfg.NewLogger(stderr)
	if err != nil {
		return err
	}
	rtCfg.Apply(logger)
	if _, fromEnv := os.LookupEnv("GOMAXPROCS"); maxProcs > 0 && (!fromEnv || maxProcs != 1) {
		runtime.GOMAXPROCS(maxProcs)
	}
	prober := service.NewProber()
	svc, err := New(cfg, Options{Registry: service.NewRegistry(), Prober: prober, Logger: logger})
	if err != nil {
		return err
	}
	var g run.Group
	g.Add(service.SignalActor(logger, prober, func() {
		if err := svc.Reload(); err != nil {
			logger.Error("reload failed, keeping the previous configuration", "err", err)
			return
		}
		logger.Info("reloaded")
	}))
	g.Add(svc.Execute, svc.Interrupt)
	done := make(chan struct{})
	g.Add(func() error {
		select {
		case <-ctx.Done():
		case <-done:
		}
		return nil
	}, func(error) { close(done) })
	return g.Run()
}

// Exit runs the probe as the process's command and exits.
func Exit() {
	service.Exit(Name, Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
