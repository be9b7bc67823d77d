// Command labeler enriches monitoring data: it consumes topic-monitor (TMA
// JSON) and topic-samples (Avro sample batches), names and labels them from
// the registry file and publishes enriched batches to topic-metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/labeler/labeler"
)

func main() {
	service.Exit("labeler", runMain(context.Background(), os.Args[1:], os.Stderr))
}

// defaultGroup is the consumer group of topic-monitor and topic-samples.
const defaultGroup = "tmaflow-labeler"

// runMain runs the command until a signal or the end of ctx.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("labeler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		logCfg   service.LogConfig
		rtCfg    service.RuntimeConfig
		kafkaCfg kafka.Config
		cfg      labeler.Config
	)
	logCfg.RegisterFlags(fs)
	rtCfg.RegisterFlags(fs, 400)
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
	if err := errors.Join(cfg.Validate(), rtCfg.Validate(), kafkaCfg.RequireBrokers(), kafkaCfg.Validate()); err != nil {
		return err
	}
	logger, err := logCfg.NewLogger(stderr)
	if err != nil {
		return err
	}
	rtCfg.Apply(logger)

	reg := service.NewRegistry()
	klog := logger.With("component", "kafka")
	pub, err := kafka.NewPublisher(kafkaCfg, klog, reg)
	if err != nil {
		return err
	}
	sub, err := kafka.NewSubscriber(kafkaCfg, klog, reg)
	if err != nil {
		return errors.Join(err, service.CloseAll(pub))
	}
	prober := service.NewProber()
	svc, err := labeler.New(cfg, labeler.Options{
		Subscriber: sub,
		Publisher:  pub,
		Registry:   reg,
		Prober:     prober,
		Logger:     logger,
		Lag:        sub.LagOf(contract.TopicMonitor, contract.TopicSamples),
	})
	if err != nil {
		return errors.Join(err, service.CloseAll(sub, pub))
	}

	err = service.Run(ctx, logger, prober, svc)
	// The router has stopped consuming: flush what the producer holds.
	return errors.Join(err, service.CloseAll(sub, pub))
}
