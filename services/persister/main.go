// Command persister stores topic-metrics of an external Kafka in an
// embedded Prometheus TSDB, optionally forwards it by remote_write, and
// serves the Prometheus query API.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/persister/persister"
)

func main() {
	service.Exit("persister", runMain(context.Background(), os.Args[1:], os.Stderr))
}

// runMain runs the command until a signal or the end of ctx.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("persister", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		logCfg   service.LogConfig
		rtCfg    service.RuntimeConfig
		kafkaCfg kafka.Config
		cfg      persister.Config
	)
	logCfg.RegisterFlags(fs)
	rtCfg.RegisterFlags(fs, 100)
	kafkaCfg.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	if err := service.Parse(fs, args); err != nil {
		return err
	}
	if err := errors.Join(cfg.Validate(), rtCfg.Validate(), kafkaCfg.RequireBrokers(), kafkaCfg.Validate()); err != nil {
		return err
	}
	if kafkaCfg.ConsumerGroup != "" {
		// Two consumers with their own groups: one flag cannot name both.
		return errors.New("kafka.consumer-group is not used by the persister: set consumer-group and remote-write.consumer-group")
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
	subscriber := func(group, consumer string) (*kafka.Subscriber, error) {
		c := kafkaCfg
		c.ConsumerGroup = group
		return kafka.NewSubscriber(c, klog, prometheus.WrapRegistererWith(prometheus.Labels{"consumer": consumer}, reg))
	}
	var subs []*kafka.Subscriber
	// Closes what exists so far; once the router runs it closes the
	// subscribers itself.
	cleanup := func() error {
		errs := []error{service.CloseAll(pub)}
		for _, s := range subs {
			errs = append(errs, s.Close())
		}
		return errors.Join(errs...)
	}
	opts := persister.Options{Publisher: pub, Registry: reg, Prober: service.NewProber(), Logger: logger}
	sub, err := subscriber(cfg.ConsumerGroup, "tsdb")
	if err != nil {
		return errors.Join(err, cleanup())
	}
	subs = append(subs, sub)
	opts.Subscriber = sub
	opts.Lag = sub.LagOf(contract.TopicMetrics)
	if cfg.RemoteWrite.Enabled() {
		rw, err := subscriber(cfg.RemoteWrite.ConsumerGroup, "remote-write")
		if err != nil {
			return errors.Join(err, cleanup())
		}
		subs = append(subs, rw)
		opts.RemoteWriteSubscriber = rw
	}
	svc, err := persister.New(cfg, opts)
	if err != nil {
		return errors.Join(err, cleanup())
	}

	err = service.Run(ctx, logger, opts.Prober, svc)
	// The router has stopped: dead letters of the last batches are
	// flushed with the publisher.
	return errors.Join(err, service.CloseAll(pub))
}
