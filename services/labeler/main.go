// Command labeler enriches monitoring data: it consumes topic-monitor (TMA
// JSON) and topic-samples (Avro sample batches), names and labels them from
// the registry file and publishes enriched batches to topic-metrics.
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
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/labeler/labeler"
)

func main() {
	if err := runMain(context.Background(), os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "labeler:", err)
		os.Exit(1)
	}
}

// defaultGroup is the consumer group of topic-monitor and topic-samples.
const defaultGroup = "tmaflow-labeler"

// runMain runs the command until a signal or the end of ctx.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("labeler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		logCfg   service.LogConfig
		kafkaCfg kafka.Config
		cfg      labeler.Config
	)
	logCfg.RegisterFlags(fs)
	kafkaCfg.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	if err := service.Parse(fs, args); err != nil {
		return err
	}
	if kafkaCfg.ConsumerGroup == "" {
		// Offsets are committed only in a group: without one a restart
		// would relabel everything from the start offset again.
		kafkaCfg.ConsumerGroup = defaultGroup
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
	klog := logger.With("component", "kafka")
	pub, err := kafka.NewPublisher(kafkaCfg, klog, reg)
	if err != nil {
		return err
	}
	sub, err := kafka.NewSubscriber(kafkaCfg, klog, reg)
	if err != nil {
		return errors.Join(err, closeAll(pub))
	}
	prober := service.NewProber()
	svc, err := labeler.New(cfg, labeler.Options{
		Subscriber: sub,
		Publisher:  pub,
		Registry:   reg,
		Prober:     prober,
		Logger:     logger,
	})
	if err != nil {
		return errors.Join(err, closeAll(sub, pub))
	}

	var g run.Group
	g.Add(service.SignalActor(logger, prober, func() {
		if err := svc.Reload(); err != nil {
			logger.Error("reload", "err", err)
		}
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
	// The router has stopped consuming: flush what the producer holds.
	return errors.Join(err, closeAll(sub, pub))
}

func closeAll(cs ...interface{ Close() error }) error {
	var errs []error
	for _, c := range cs {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %T: %w", c, err))
		}
	}
	return errors.Join(errs...)
}
