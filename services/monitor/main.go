// Command monitor is the TMA ingest endpoint on its own: POST /monitor
// to topic-monitor on an external Kafka. `monitor hash-secret` prints the
// hash of a probe secret for the registry file.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
)

func main() {
	service.Exit("monitor", runMain(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
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
		rtCfg    service.RuntimeConfig
		kafkaCfg kafka.Config
		cfg      monitor.Config
	)
	logCfg.RegisterFlags(fs)
	rtCfg.RegisterFlags(fs, 400)
	kafkaCfg.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	if err := service.Parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(cfg.Validate(), rtCfg.Validate(), kafkaCfg.RequireBrokers(), kafkaCfg.Validate()); err != nil {
		return err
	}
	logger, err := logCfg.NewLogger(stderr)
	if err != nil {
		return err
	}
	rtCfg.Apply(logger)

	reg := service.NewRegistry()
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
		return errors.Join(err, service.CloseAll(pub))
	}

	err = service.Run(ctx, logger, prober, svc)
	// The server has drained: flush what the producer still holds.
	return errors.Join(err, service.CloseAll(pub))
}
