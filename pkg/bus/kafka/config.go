// Package kafka implements Watermill's message.Publisher and
// message.Subscriber on github.com/segmentio/kafka-go.
//
// Records map to messages as follows: the record key is the message's
// bus.MetadataKey metadata (see bus.SetKey), the value is the payload, every
// other metadata entry is a record header and back, and the Watermill UUID
// travels in the HeaderUUID header (left out when the UUID is empty, so plain
// Kafka consumers see only the contract headers).
//
// Producers compress every record batch with the -kafka.compression codec
// (zstd by default, see DefaultCompression); consumers, ours and any Kafka
// client, decompress transparently.
package kafka

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config configures the Kafka client of a publisher or subscriber.
type Config struct {
	// Brokers are the bootstrap brokers. An empty list is valid for
	// Validate: tmaflow then starts its embedded broker and fills it in.
	Brokers  service.StringList
	ClientID string

	// Topic creation.
	Partitions        int
	ReplicationFactor int

	// Producer.
	BatchTimeout   time.Duration
	BatchSize      int
	BatchBytes     int64
	WriteTimeout   time.Duration
	PublishTimeout time.Duration
	MaxAttempts    int
	// Compression is the codec of produced record batches (see
	// Compressions).
	Compression string

	DialTimeout time.Duration

	// Consumer.
	ConsumerGroup     string
	StartOffset       string
	CommitInterval    time.Duration
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	FetchMaxWait      time.Duration
	FetchMaxBytes     int
	NackBackoff       time.Duration
	// MaxInFlight is how many records of a partition are handed out
	// before the first is acknowledged (see bus.AwaitTurn).
	MaxInFlight int

	TLS  TLSConfig
	SASL SASLConfig

	// security is TLS and SASL resolved (files read); nil until
	// withSecurity, which the constructors call.
	security *security
}

// Start offsets of a consumer without a committed offset.
const (
	StartEarliest = "earliest"
	StartLatest   = "latest"
)

// RegisterFlags registers the kafka.* flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.Var(&c.Brokers, "kafka.brokers", "Comma-separated Kafka bootstrap brokers (host:port).")
	f.StringVar(&c.ClientID, "kafka.client-id", "tmaflow", "Kafka client id.")
	f.IntVar(&c.Partitions, "kafka.partitions", 8, "Partitions of topics created when missing.")
	f.IntVar(&c.ReplicationFactor, "kafka.replication-factor", 1, "Replication factor of topics created when missing (-1: broker default).")
	f.DurationVar(&c.BatchTimeout, "kafka.batch-timeout", 0, "Longest a produced record waits for its batch to fill (kafka-go Writer). 0: no waiting; a record goes out at once when its broker has no produce request in flight, else with the records queued behind that request.")
	f.IntVar(&c.BatchSize, "kafka.batch-size", 100, "Records per produce batch and partition before it is sent at once.")
	f.Int64Var(&c.BatchBytes, "kafka.batch-bytes", 1<<20, "Bytes per produce batch and partition before it is sent at once; larger records are refused.")
	f.DurationVar(&c.WriteTimeout, "kafka.write-timeout", 10*time.Second, "Timeout of one produce request.")
	f.DurationVar(&c.PublishTimeout, "kafka.publish-timeout", 30*time.Second, "Bound on Publish when the message context has no deadline.")
	f.IntVar(&c.MaxAttempts, "kafka.max-attempts", 5, "Attempts of one produce batch before its records fail.")
	f.StringVar(&c.Compression, "kafka.compression", DefaultCompression, "Codec of produced record batches: "+strings.Join(Compressions(), ", ")+". The broker stores batches as sent and consumers decompress them; zstd needs Kafka 2.1 or later in brokers and consumers, lz4 suits older ones.")
	f.DurationVar(&c.DialTimeout, "kafka.dial-timeout", 5*time.Second, "Timeout to connect to a broker.")
	f.StringVar(&c.ConsumerGroup, "kafka.consumer-group", "", "Consumer group id; empty: each subscriber reads every partition without committing.")
	f.StringVar(&c.StartOffset, "kafka.start-offset", StartEarliest, "Where a group without a committed offset starts: earliest or latest.")
	f.DurationVar(&c.CommitInterval, "kafka.commit-interval", time.Second, "How often acknowledged offsets are committed (0: after every acknowledgement).")
	f.DurationVar(&c.HeartbeatInterval, "kafka.heartbeat-interval", time.Second, "Consumer group heartbeat interval: how fast a member notices a rebalance.")
	f.DurationVar(&c.SessionTimeout, "kafka.session-timeout", 10*time.Second, "Consumer group session timeout: a silent member is evicted after it.")
	f.DurationVar(&c.RebalanceTimeout, "kafka.rebalance-timeout", 10*time.Second, "How long the coordinator waits for members to rejoin; in-flight messages get half of it to finish.")
	f.DurationVar(&c.FetchMaxWait, "kafka.fetch-max-wait", 500*time.Millisecond, "Longest an idle fetch waits on the broker; also how long giving up a partition can take.")
	f.IntVar(&c.FetchMaxBytes, "kafka.fetch-max-bytes", 1<<20, "Most bytes fetched per partition and request.")
	f.DurationVar(&c.NackBackoff, "kafka.nack-backoff", 100*time.Millisecond, "Delay before a nacked message is delivered again.")
	f.IntVar(&c.MaxInFlight, "kafka.max-in-flight", 64, "Records of one partition handed to handlers before the first is acknowledged; handlers that must keep the partition's order take turns (1: one record at a time). Offsets are committed only below the first unacknowledged record.")
	c.TLS.registerFlags(f)
	c.SASL.registerFlags(f)
}

// DefaultConfig returns the flag defaults, for tests and embedding callers.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(defaultsOnly{})
	return c
}

// Validate checks everything but the brokers: tmaflow runs an embedded
// broker when none are given, so the caller decides (RequireBrokers).
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	for _, b := range c.Brokers {
		check(strings.Contains(b, ":"), "kafka.brokers: %q is not host:port", b)
	}
	check(c.Partitions > 0, "kafka.partitions must be > 0, got %d", c.Partitions)
	check(c.ReplicationFactor > 0 || c.ReplicationFactor == -1, "kafka.replication-factor must be > 0 or -1, got %d", c.ReplicationFactor)
	check(c.BatchTimeout >= 0, "kafka.batch-timeout must be >= 0, got %s", c.BatchTimeout)
	check(c.BatchSize > 0, "kafka.batch-size must be > 0, got %d", c.BatchSize)
	check(c.BatchBytes > 0, "kafka.batch-bytes must be > 0, got %d", c.BatchBytes)
	check(c.WriteTimeout > 0, "kafka.write-timeout must be > 0, got %s", c.WriteTimeout)
	check(c.PublishTimeout > 0, "kafka.publish-timeout must be > 0, got %s", c.PublishTimeout)
	check(c.MaxAttempts > 0, "kafka.max-attempts must be > 0, got %d", c.MaxAttempts)
	if _, err := parseCompression(c.Compression); err != nil {
		errs = append(errs, err)
	}
	check(c.DialTimeout > 0, "kafka.dial-timeout must be > 0, got %s", c.DialTimeout)
	check(c.StartOffset == StartEarliest || c.StartOffset == StartLatest, "kafka.start-offset must be %s or %s, got %q", StartEarliest, StartLatest, c.StartOffset)
	check(c.CommitInterval >= 0, "kafka.commit-interval must be >= 0, got %s", c.CommitInterval)
	check(c.HeartbeatInterval > 0, "kafka.heartbeat-interval must be > 0, got %s", c.HeartbeatInterval)
	check(c.SessionTimeout >= 3*c.HeartbeatInterval, "kafka.session-timeout (%s) must be at least 3 heartbeat intervals (%s)", c.SessionTimeout, c.HeartbeatInterval)
	check(c.RebalanceTimeout > 0, "kafka.rebalance-timeout must be > 0, got %s", c.RebalanceTimeout)
	check(c.FetchMaxWait > 0, "kafka.fetch-max-wait must be > 0, got %s", c.FetchMaxWait)
	check(c.FetchMaxBytes > 0, "kafka.fetch-max-bytes must be > 0, got %d", c.FetchMaxBytes)
	check(c.NackBackoff >= 0, "kafka.nack-backoff must be >= 0, got %s", c.NackBackoff)
	check(c.MaxInFlight > 0, "kafka.max-in-flight must be > 0, got %d", c.MaxInFlight)
	errs = append(errs, c.TLS.validate()...)
	errs = append(errs, c.SASL.validate()...)
	return errors.Join(errs...)
}

// ErrNoBrokers is returned by RequireBrokers for an empty broker list.
var ErrNoBrokers = errors.New("kafka.brokers: at least one broker is required")

// RequireBrokers fails when no broker is configured.
func (c Config) RequireBrokers() error {
	if len(c.Brokers) == 0 {
		return ErrNoBrokers
	}
	return nil
}

func (c Config) startOffset() int64 {
	if c.StartOffset == StartLatest {
		return kafka.LastOffset
	}
	return kafka.FirstOffset
}

// dialer and transport use the security of a config that went through
// withSecurity, and none otherwise.
func (c Config) dialer() *kafka.Dialer {
	d := &kafka.Dialer{ClientID: c.ClientID, Timeout: c.DialTimeout, DualStack: true}
	if c.security != nil {
		d.TLS, d.SASLMechanism = c.security.tls, c.security.sasl
	}
	return d
}

func (c Config) transport() *kafka.Transport {
	t := &kafka.Transport{ClientID: c.ClientID, DialTimeout: c.DialTimeout}
	if c.security != nil {
		t.TLS, t.SASL = c.security.tls, c.security.sasl
	}
	return t
}

// clientLoggers adapts slog to kafka-go's Printf loggers, both at debug:
// kafka-go logs every join, fetch restart and commit, and logs as errors
// the retries it handles itself (a reader closing mid-dial, a sync that
// meets a rebalance). What the adapter cannot recover from reaches it as an
// error from Next, FetchMessage or WriteMessages, and it logs those itself.
func clientLoggers(logger *slog.Logger) (info, errs kafka.Logger) {
	enabled := logger.Enabled(context.Background(), slog.LevelDebug)
	mk := func(msg string) kafka.Logger {
		return kafka.LoggerFunc(func(format string, args ...any) {
			if enabled {
				logger.Debug(msg, "msg", fmt.Sprintf(format, args...))
			}
		})
	}
	return mk("kafka client"), mk("kafka client error")
}

// defaultsOnly is a FlagSet that only stores the defaults.
type defaultsOnly struct{}

func (defaultsOnly) StringVar(p *string, _, v, _ string)                  { *p = v }
func (defaultsOnly) BoolVar(p *bool, _ string, v bool, _ string)          { *p = v }
func (defaultsOnly) IntVar(p *int, _ string, v int, _ string)             { *p = v }
func (defaultsOnly) Int64Var(p *int64, _ string, v int64, _ string)       { *p = v }
func (defaultsOnly) Float64Var(p *float64, _ string, v float64, _ string) { *p = v }
func (defaultsOnly) DurationVar(p *time.Duration, _ string, v time.Duration, _ string) {
	*p = v
}
func (defaultsOnly) Var(flag.Value, string, string) {}
