// Command ruler evaluates Prometheus alerting and recording rules on
// topic-metrics of an external Kafka as the data arrives, and sends alerts
// to Alertmanager and topic-alerts.
package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
)

func main() {
	service.Exit("ruler", runMain(context.Background(), os.Args[1:], os.Stderr))
}

// runMain runs the command until a signal or the end of ctx.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("ruler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		logCfg   service.LogConfig
		rtCfg    service.RuntimeConfig
		kafkaCfg kafka.Config
		cfg      ruler.Config
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
	if kafkaCfg.ConsumerGroup != "" {
		return errors.New("kafka.consumer-group is not used by the ruler: every replica reads all partitions of topic-metrics")
	}
	logger, err := logCfg.NewLogger(stderr)
	if err != nil {
		return err
	}
	rtCfg.Apply(logger)
	ruler.NoLibraryTracing()
	reg := service.NewRegistry()
	pub, err := kafka.NewPublisher(kafkaCfg, logger.With("component", "kafka"), reg)
	if err != nil {
		return err
	}
	opts := ruler.Options{Publisher: pub, Kafka: kafkaCfg, Registry: reg, Prober: service.NewProber(), Logger: logger}
	svc, err := ruler.New(cfg, opts)
	if err != nil {
		return errors.Join(err, service.CloseAll(pub))
	}
	err = service.Run(ctx, logger, opts.Prober, svc)
	// Execute delivered what was queued: flush the producer.
	return errors.Join(err, service.CloseAll(pub))
}
