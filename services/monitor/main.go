// Command monitor is the TMA ingest endpoint on its own: POST /monitor
// to topic-monitor on an external Kafka. `monitor hash-secret` prints the
// hash of a probe secret for the registry file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
)

func main() {
	if err := runMain(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "monitor:", err)
		os.Exit(1)
	}
}

// runMain runs the command until a signal or the end of ctx.
func runMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "hash-secret" {
		return registry.HashSecretCommand("monitor hash-secret", args[1:], stdin, stdout, stderr)
	}

	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		logCfg   service.LogConfig
		kafkaCfg kafka.Config
		cfg      monitor.Config
	)
	logCfg.RegisterFlags(fs)
	kafkaCfg.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	if err := service.Parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(cfg.Validate(), kafkaCfg.RequireBrokers(), kafkaCfg.Validate()); err != nil {
		return err
	}
	logger, err := logCfg.NewLogger(stderr)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pub, err := kafka.NewPublisher(kafkaCfg, logger.With("component", "kafka"), reg)
	if err != nil {
		return err
	}
	prober := service.NewProber()
	svc, err := monitor.New(cfg, monitor.Options{
		Publisher: pub,
		Ping:      pub.Ping,
		Registry:  reg,
		Prober:    prober,
		Logger:    logger,
	})
	if err != nil {
		return errors.Join(err, closePublisher(pub))
	}

	var g run.Group
	g.Add(service.SignalActor(logger, prober, func() {
		if err := svc.Reload(); err != nil {
			logger.Error("reload", "err", err)
			return
		}
		logger.Info("reloaded registry and tls files")
	}))
	g.Add(svc.Execute, svc.Interrupt)
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			<-ctx.Done()
			return nil
		}, func(error) { cancel() })
	}
	err = g.Run()
	// The server has drained: flush what the producer still holds.
	return errors.Join(err, closePublisher(pub))
}

func closePublisher(pub interface{ Close() error }) error {
	if err := pub.Close(); err != nil {
		return fmt.Errorf("close publisher: %w", err)
	}
	return nil
}
