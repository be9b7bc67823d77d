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
	"path/filepath"
	"slices"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	natsbus "github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Bus kinds (-bus).
const (
	KindKafka = "kafka"
	KindNATS  = "nats"
)

// Kinds are the values -bus takes.
func Kinds() []string { return []string{KindKafka, KindNATS} }

// Config chooses and configures the bus.
type Config struct {
	Kind  string
	Kafka kafka.Config
	NATS  natsbus.Config
	// Broker configures the embedded Kafka broker and NATSServer the
	// embedded NATS server; the one of the chosen bus runs when the
	// process allows it (RegisterEmbeddedFlags) and no external broker or
	// server is configured.
	Broker     broker.Config
	NATSServer natsbus.ServerConfig

	embeddable bool
}

// RegisterFlags registers -bus and the flags of every bus kind.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.Kind, "bus", KindKafka, "Message bus: "+strings.Join(Kinds(), ", ")+".")
	c.Kafka.RegisterFlags(f)
	c.NATS.RegisterFlags(f)
}

// RegisterEmbeddedFlags registers the embedded brokers' flags (broker.*,
// and nats.listen-address, nats.store-dir, nats.sync-interval,
// nats.max-store) and lets Open start the chosen one when no external
// broker is configured.
func (c *Config) RegisterEmbeddedFlags(f service.FlagSet) {
	c.embeddable = true
	c.Broker.RegisterFlags(f)
	c.NATSServer.RegisterFlags(f)
}

// Embedded reports whether Open starts an embedded broker.
func (c *Config) Embedded() bool {
	if !c.embeddable {
		return false
	}
	if c.Kind == KindNATS {
		return c.NATS.RequireURL() != nil
	}
	return len(c.Kafka.Brokers) == 0
}

// Validate checks the chosen bus; without an embedded broker it must name
// an external one.
func (c *Config) Validate() error {
	var errs []error
	switch c.Kind {
	case KindKafka:
		errs = append(errs, c.Kafka.Validate())
		if c.Embedded() {
			errs = append(errs, c.Broker.Validate())
		} else {
			errs = append(errs, c.Kafka.RequireBrokers())
		}
	case KindNATS:
		errs = append(errs, c.NATS.Validate())
		if c.Embedded() {
			errs = append(errs, c.NATSServer.Validate())
		} else {
			errs = append(errs, c.NATS.RequireURL())
		}
	default:
		return fmt.Errorf("bus %q: want one of %s", c.Kind, strings.Join(Kinds(), ", "))
	}
	if other, set := c.otherConsumerGroup(); set {
		errs = append(errs, fmt.Errorf("%s is not used with -bus=%s: set %s", other, c.Kind, c.ConsumerGroupFlag()))
	}
	return errors.Join(errs...)
}

// ConsumerGroup is the consumer group flag of the chosen bus
// (-kafka.consumer-group or -nats.consumer-group): in a service's own
// binary it overrides the service's group.
func (c *Config) ConsumerGroup() string {
	if c.Kind == KindNATS {
		return c.NATS.ConsumerGroup
	}
	return c.Kafka.ConsumerGroup
}

// ConsumerGroupFlag names the flag ConsumerGroup reads.
func (c *Config) ConsumerGroupFlag() string {
	if c.Kind == KindNATS {
		return "nats.consumer-group"
	}
	return "kafka.consumer-group"
}

// otherConsumerGroup is the group flag of the bus not chosen, when set:
// it would be ignored.
func (c *Config) otherConsumerGroup() (flag string, set bool) {
	if c.Kind == KindNATS {
		return "kafka.consumer-group", c.Kafka.ConsumerGroup != ""
	}
	return "nats.consumer-group", c.NATS.ConsumerGroup != ""
}

// natsStoreDir is where the embedded NATS server keeps JetStream: the
// configured directory, else beside the embedded Kafka broker's
// (<data-dir>/nats in tmaflow, whose <data-dir>/kafka the broker's is).
func (c *Config) natsStoreDir() string {
	if c.NATSServer.StoreDir != "" || c.Broker.DataDir == "" {
		return c.NATSServer.StoreDir
	}
	return filepath.Join(filepath.Dir(c.Broker.DataDir), "nats")
}

// publisher is what the bus needs of a kind's publisher.
type publisher interface {
	message.Publisher
	Ping(ctx context.Context) error
}

// Bus is an open bus: one publisher for the process, subscribers and
// readers made on demand.
type Bus struct {
	kind       string
	kafka      kafka.Config   // brokers filled in
	nats       natsbus.Config // URL filled in
	broker     *broker.Broker
	natsServer *natsbus.Server
	publisher  publisher
}

// Open starts the embedded broker if there is one and connects the
// publisher; its metrics go to reg.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (_ *Bus, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Bus{kind: cfg.Kind, kafka: cfg.Kafka, nats: cfg.NATS}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.Close())
		}
	}()
	if cfg.Kind == KindNATS {
		if cfg.Embedded() {
			scfg := cfg.NATSServer
			scfg.StoreDir = cfg.natsStoreDir()
			srvLog := logger.With("component", "nats-server")
			if b.natsServer, err = natsbus.StartServer(scfg, srvLog); err != nil {
				return nil, err
			}
			b.nats.URL = b.natsServer.URL()
			srvLog.Info("nats server started", "url", b.nats.URL, "store_dir", scfg.StoreDir, "sync_interval", scfg.SyncInterval)
		}
		if b.publisher, err = natsbus.NewPublisher(b.nats, logger.With("component", "publisher"), reg); err != nil {
			return nil, err
		}
		return b, nil
	}
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

// Ping checks that the broker answers (on NATS: that the connection is up
// and JetStream answers).
func (b *Bus) Ping(ctx context.Context) error { return b.publisher.Ping(ctx) }

// Subscriber returns a subscriber in consumer group group (none: every
// partition, nothing committed). The caller closes it.
func (b *Bus) Subscriber(group string, logger *slog.Logger, reg prometheus.Registerer) (bus.Subscriber, error) {
	if b.kind == KindNATS {
		cfg := b.nats
		cfg.ConsumerGroup = group
		return natsbus.NewSubscriber(cfg, logger, reg)
	}
	cfg := b.kafka
	cfg.ConsumerGroup = group
	return kafka.NewSubscriber(cfg, logger, reg)
}

// Reader returns a group-less reader of every partition.
func (b *Bus) Reader(logger *slog.Logger) (bus.Reader, error) {
	if b.kind == KindNATS {
		cfg := b.nats
		cfg.ConsumerGroup = ""
		return natsbus.NewReader(cfg, logger)
	}
	cfg := b.kafka
	cfg.ConsumerGroup = ""
	return kafka.NewReader(cfg, logger)
}

// Brokers are the bootstrap addresses of the bus: the embedded broker's,
// or the configured ones (on NATS the server URLs).
func (b *Bus) Brokers() []string {
	if b.kind == KindNATS {
		return strings.Split(b.nats.URL, ",")
	}
	return slices.Clone(b.kafka.Brokers)
}

// Kind is the bus's kind (-bus).
func (b *Bus) Kind() string { return b.kind }

// Embedded reports whether the bus runs on a broker or server this
// process started: the embedded Kafka broker, or the embedded NATS server.
func (b *Bus) Embedded() bool { return b.broker != nil || b.natsServer != nil }

// Broker is the embedded Kafka broker, nil with an external one or on
// NATS. Its actor belongs in the process's run group. The embedded NATS
// server needs none: it runs from Open to Close.
func (b *Bus) Broker() *broker.Broker { return b.broker }

// Close flushes and closes the publisher, then stops the embedded broker
// or server. Subscribers must be closed before.
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
	if b.natsServer != nil {
		b.natsServer.Close()
		b.natsServer = nil
	}
	return err
}
