// Package broker is the embedded Kafka-protocol broker of the all-in-one
// tmaflow: franz-go's kfake with an on-disk data dir and retention, so that
// one process runs the whole pipeline and any Kafka client (kcat, a consumer
// for analysis) can attach to it.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Topics are the contract topics every broker starts with.
func Topics() []string {
	return []string{
		contract.TopicMonitor,
		contract.TopicSamples,
		contract.TopicMetrics,
		contract.TopicAlerts,
		contract.TopicReports,
		contract.TopicDLQ,
	}
}

// StreamTopics are the high-volume topics every record of the pipeline
// passes through: the labeler, persister and ruler consume them within
// seconds and the TSDB keeps their data, so they are kept for a shorter
// time and size than the rest (alerts, reports, dead letters).
func StreamTopics() []string {
	return []string{contract.TopicMonitor, contract.TopicSamples, contract.TopicMetrics}
}

// Config configures the embedded broker.
type Config struct {
	ListenAddress     string
	AdvertisedAddress string
	DataDir           string
	// Retention and RetentionBytes (per partition, -1 none) keep the
	// topics that are not stream topics.
	Retention      time.Duration
	RetentionBytes int64
	// StreamRetention and StreamRetentionBytes keep the stream topics;
	// zero: as Retention and RetentionBytes.
	StreamRetention      time.Duration
	StreamRetentionBytes int64
	// SegmentBytes is the size at which a partition's log rolls into a new
	// file; 0: kfake's default (100 MiB).
	SegmentBytes           int64
	RetentionCheckInterval time.Duration
	Partitions             int
	SyncWrites             bool
}

// RegisterFlags registers the broker flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.ListenAddress, "broker.listen-address", "127.0.0.1:9092",
		"Address the embedded Kafka broker listens on (port 0 picks a free one).")
	f.StringVar(&c.AdvertisedAddress, "broker.advertised-address", "",
		"host:port the broker tells clients to connect to; default the listen address, with 127.0.0.1 for an unspecified host.")
	f.StringVar(&c.DataDir, "broker.data-dir", "",
		"Directory of the broker's logs and state (default <data-dir>/kafka in tmaflow; empty keeps everything in memory).")
	f.DurationVar(&c.Retention, "broker.retention", 168*time.Hour,
		"Records older than this are deleted (Kafka's log.retention.ms).")
	f.Int64Var(&c.RetentionBytes, "broker.retention-bytes", -1,
		"Oldest records of a partition are deleted once it holds more bytes than this; -1 means no limit (Kafka's log.retention.bytes).")
	f.DurationVar(&c.StreamRetention, "broker.stream-retention", 24*time.Hour,
		"Retention of the stream topics (topic-monitor, topic-samples, topic-metrics), which the services consume within seconds; the other topics keep -broker.retention. 0: as -broker.retention.")
	f.Int64Var(&c.StreamRetentionBytes, "broker.stream-retention-bytes", 32<<20,
		"Bytes a partition of a stream topic keeps before its oldest records are deleted; the broker holds about 100 bytes of memory per retained produce batch, so this bounds its memory. -1: no limit; 0: as -broker.retention-bytes.")
	f.Int64Var(&c.SegmentBytes, "broker.segment-bytes", 16<<20,
		"A partition's log rolls into a new file at this size; retention removes a file once all its records are deleted (Kafka's log.segment.bytes).")
	f.DurationVar(&c.RetentionCheckInterval, "broker.retention-check-interval", 5*time.Minute,
		"How often retention is enforced (Kafka's log.retention.check.interval.ms).")
	f.IntVar(&c.Partitions, "broker.partitions", 8,
		"Partitions of the contract topics and of topics created without a count.")
	f.BoolVar(&c.SyncWrites, "broker.sync-writes", false,
		"fsync every produced batch before acknowledging it; without it data reaches the disk through the page cache, as with Kafka's defaults.")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.ListenAddress); err != nil {
		return fmt.Errorf("broker.listen-address %q: %w", c.ListenAddress, err)
	}
	if c.AdvertisedAddress != "" {
		if _, port, err := net.SplitHostPort(c.AdvertisedAddress); err != nil || port == "" {
			return fmt.Errorf("broker.advertised-address %q: want host:port", c.AdvertisedAddress)
		}
	}
	if c.Retention <= 0 {
		return fmt.Errorf("broker.retention %s: must be positive", c.Retention)
	}
	if c.RetentionBytes < -1 || c.RetentionBytes == 0 {
		return fmt.Errorf("broker.retention-bytes %d: must be positive or -1", c.RetentionBytes)
	}
	if c.StreamRetention < 0 {
		return fmt.Errorf("broker.stream-retention %s: must be positive, or 0 for -broker.retention", c.StreamRetention)
	}
	if c.StreamRetentionBytes < -1 {
		return fmt.Errorf("broker.stream-retention-bytes %d: must be positive, -1 or 0", c.StreamRetentionBytes)
	}
	if c.SegmentBytes < 0 || (c.SegmentBytes > 0 && c.SegmentBytes < 1<<20) {
		return fmt.Errorf("broker.segment-bytes %d: must be at least 1 MiB, or 0 for the default", c.SegmentBytes)
	}
	if c.RetentionCheckInterval <= 0 {
		return fmt.Errorf("broker.retention-check-interval %s: must be positive", c.RetentionCheckInterval)
	}
	if c.Partitions < 1 {
		return fmt.Errorf("broker.partitions %d: must be at least 1", c.Partitions)
	}
	return nil
}

// Broker is a running embedded broker.
type Broker struct {
	cfg     Config
	logger  *slog.Logger
	cluster *kfake.Cluster
	addr    string
	// admin talks to the broker's own listener.
	admin   *kgo.Client
	metrics *metrics
	watch   retentionWatch

	// mu orders Close after any retention pass: kfake's admin calls block
	// forever on a closed cluster.
	mu     sync.Mutex
	closed bool

	stop     chan struct{}
	stopOnce sync.Once
}

// Start binds the listener, loads the data dir (or creates it) and starts
// serving. The contract topics exist when it returns.
func Start(cfg Config, logger *slog.Logger, opts ...Option) (*Broker, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.reg == nil {
		o.reg = prometheus.NewRegistry()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.ListenAddress, err)
	}
	adv, err := advertised(cfg.AdvertisedAddress, ln.Addr())
	if err != nil {
		return nil, errors.Join(err, ln.Close())
	}
	// kfake puts its listener's address into metadata responses; clients
	// must get one they can dial, not 0.0.0.0.
	aln := &advertisedListener{Listener: ln, addr: adv}

	loaded := false
	if cfg.DataDir != "" {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "meta.json")); err == nil {
			loaded = true
		}
	}

	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(func(string, string) (net.Listener, error) { return aln, nil }),
		kfake.WithLogger(slogLogger{logger}),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.AllowAutoTopicCreation(),
		kfake.SeedTopics(int32(cfg.Partitions), Topics()...),
		kfake.BrokerConfigs(cfg.brokerConfigs()),
	}
	if cfg.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		kopts = append(kopts, kfake.SyncWrites())
	}
	cluster, err := kfake.NewCluster(kopts...)
	if err != nil {
		// NewCluster closes the listener it got on failure.
		return nil, fmt.Errorf("start broker on %s: %w", cfg.ListenAddress, err)
	}
	b := &Broker{
		cfg:     cfg,
		logger:  logger,
		cluster: cluster,
		addr:    adv.String(),
		metrics: newMetrics(o.reg),
		stop:    make(chan struct{}),
	}
	if loaded {
		// Seeding applies to a new data dir only; a contract topic added
		// since the dir was written (or deleted by hand) is created here.
		if err := b.ensureTopics(context.Background()); err != nil {
			b.Close()
			return nil, err
		}
	}
	// Every start: the flags win over what a data dir was written with.
	// Admin requests go to the listener itself: the advertised address
	// need not be reachable from here.
	local, err := advertised("", ln.Addr())
	if err == nil {
		b.admin, err = kgo.NewClient(kgo.SeedBrokers(local.String()))
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("admin client for broker %s: %w", b.addr, err)
	}
	if err := b.configureTopics(context.Background()); err != nil {
		b.Close()
		return nil, err
	}
	// The baseline of what retention deletes from here on.
	b.look()
	logger.Info("kafka broker started", "addr", b.addr, "listen", ln.Addr().String(),
		"data_dir", cfg.DataDir, "loaded", loaded, "retention", cfg.Retention,
		"retention_bytes", cfg.RetentionBytes, "stream_retention", cfg.streamRetention(),
		"stream_retention_bytes", cfg.streamRetentionBytes(), "partitions", cfg.Partitions)
	return b, nil
}

// Addrs are the bootstrap addresses clients use.
func (b *Broker) Addrs() []string { return []string{b.addr} }

// Execute enforces retention until Interrupt. It does not close the broker:
// the owner calls Close after everything that produces to it has stopped.
func (b *Broker) Execute() error {
	t := time.NewTicker(b.cfg.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return nil
		case <-t.C:
			b.ApplyRetention()
		}
	}
}

// Interrupt ends Execute.
func (b *Broker) Interrupt(error) {
	b.stopOnce.Do(func() { close(b.stop) })
}

// ApplyRetention deletes the records that are past the retention time or
// size now, instead of at the next check.
func (b *Broker) ApplyRetention() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.cluster.ApplyRetention()
	b.look()
}

// Close stops serving and writes the broker's state to the data dir, so a
// broker started on the same dir resumes with every acknowledged record.
// kfake logs (through the logger) any write it could not complete.
func (b *Broker) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	if b.admin != nil {
		b.admin.Close()
	}
	b.cluster.Close()
	b.logger.Info("kafka broker stopped", "addr", b.addr)
}

func (b *Broker) ensureTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr))
	if err != nil {
		return fmt.Errorf("client for broker %s: %w", b.addr, err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	for _, t := range Topics() {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = t
		rt.NumPartitions = int32(b.cfg.Partitions)
		rt.ReplicationFactor = -1
		req.Topics = append(req.Topics, rt)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topics on %s: %w", b.addr, err)
	}
	for _, t := range resp.Topics {
		if t.ErrorCode == 0 {
			b.logger.Info("created missing topic", "topic", t.Topic)
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Topic, err)
		}
	}
	return nil
}

// advertised is the address put into metadata: the configured one, or the
// bound one with loopback for an unspecified host.
func advertised(configured string, bound net.Addr) (net.Addr, error) {
	if configured != "" {
		return staticAddr(configured), nil
	}
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return nil, fmt.Errorf("bound address %s: %w", bound, err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return staticAddr(net.JoinHostPort(host, port)), nil
}

type staticAddr string

func (a staticAddr) Network() string { return "tcp" }
func (a staticAddr) String() string  { return string(a) }

type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l *advertisedListener) Addr() net.Addr { return l.addr }

// slogLogger adapts slog to kfake's printf logger; kfake logs only warnings
// and errors worth seeing at info level, and requests at debug.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	case kfake.LogLevelInfo:
		lvl = slog.LevelDebug // kfake's info is per request
	case kfake.LogLevelDebug:
		lvl = slog.LevelDebug - 4
	default:
		return
	}
	ctx := context.Background()
	if !s.l.Enabled(ctx, lvl) {
		return
	}
	s.l.Log(ctx, lvl, "kafka broker", "detail", fmt.Sprintf(format, args...))
}
