// Package backend is the one place the message bus is chosen (-bus): it
// builds the publisher, the subscribers and the group-less readers every
// service uses from one configuration and, where the process allows it and
// no external broker is configured, starts the embedded broker. Services
// see only Watermill's Publisher/Subscriber and the bus package's
// interfaces, never an adapter.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Bus kinds (-bus).
const (
	KindKafka = "kafka"
)

// Kinds are the values -bus takes.
func Kinds() []string { return []string{KindKafka} }

// Config chooses and configures the bus.
type Config struct {
	Kind  string
	Kafka kafka.Config
	// Broker configures the embedded broker, run when the process allows
	// one (RegisterEmbeddedFlags) and no external broker is configured.
	Broker broker.Config

	embeddable bool
}

// RegisterFlags registers -bus and the flags of every bus kind.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.Kind, "bus", KindKafka, "Message bus: "+strings.Join(Kinds(), ", ")+".")
	c.Kafka.RegisterFlags(f)
}

// RegisterEmbeddedFlags registers the embedded broker's flags (broker.*)
// and lets Open start it when no external broker is configured.
func (c *Config) RegisterEmbeddedFlags(f service.FlagSet) {
	c.embeddable = true
	c.Broker.RegisterFlags(f)
}

// Embedded reports whether Open starts the embedded broker.
func (c *Config) Embedded() bool { return c.embeddable && len(c.Kafka.Brokers) == 0 }

// Validate checks the chosen bus; without an embedded broker it must name
// an external one.
func (c *Config) Validate() error {
	if !slices.Contains(Kinds(), c.Kind) {
		return fmt.Errorf("bus %q: want one of %s", c.Kind, strings.Join(Kinds(), ", "))
	}
	errs := []error{c.Kafka.Validate()}
	if c.Embedded() {
		errs = append(errs, c.Broker.Validate())
	} else {
		errs = append(errs, c.Kafka.RequireBrokers())
	}
	return errors.Join(errs...)
}

// Bus is an open bus: one publisher for the process, subscribers and
// readers made on demand.
type Bus struct {
	kafka     kafka.Config // brokers filled in
	broker    *broker.Broker
	publisher *kafka.Publisher
}

// Open starts the embedded broker if there is one and connects the
// publisher; its metrics go to reg.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (_ *Bus, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Bus{kafka: cfg.Kafka}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close())
		}
	}()
	if cfg.Embedded() {
		if b.broker, err = broker.Start(cfg.Broker, logger.With("component", "broker"), broker.Metrics(reg)); err != nil {
			return nil, err
		}
		b.kafka.Brokers = b.broker.Addrs()
	}
	if b.publisher, err = kafka.NewPublisher(b.kafka, logger.With("component", "publisher"), reg); err != nil {
		return nil, err
	}
	return b, nil
}

// Publisher is the process's publisher. Publish returns nil only once
// the broker acknowledged every message.
func (b *Bus) Publisher() message.Publisher { return b.publisher }

// Ping checks that the broker answers.
func (b *Bus) Ping(ctx context.Context) error { return b.publisher.Ping(ctx) }

// Subscriber returns a subscriber in consumer group group (none: every
// partition, nothing committed). The caller closes it.
func (b *Bus) Subscriber(group string, logger *slog.Logger, reg prometheus.Registerer) (bus.Subscriber, error) {
	cfg := b.kafka
	cfg.ConsumerGroup = group
	return kafka.NewSubscriber(cfg, logger, reg)
}

// Reader returns a group-less reader of every partition.
func (b *Bus) Reader(logger *slog.Logger) (bus.Reader, error) {
	cfg := b.kafka
	cfg.ConsumerGroup = ""
	return kafka.NewReader(cfg, logger)
}

// Brokers are the bootstrap addresses of the bus: the embedded broker's,
// or the configured ones.
func (b *Bus) Brokers() []string { return slices.Clone(b.kafka.Brokers) }

// Broker is the embedded broker, nil with an external one. Its actor
// belongs in the process's run group.
func (b *Bus) Broker() *broker.Broker { return b.broker }

// Close flushes and closes the publisher, then stops the embedded broker.
// Subscribers must be closed before.
func (b *Bus) Close() error {
	var err error
	if b.publisher != nil {
		if cerr := b.publisher.Close(); cerr != nil {
			err = fmt.Errorf("close publisher: %w", cerr)
		}
		b.publisher = nil
	}
	if b.broker != nil {
		b.broker.Close()
		b.broker = nil
	}
	return err
}
