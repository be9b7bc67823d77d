package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Reader is a bus.Reader on Kafka (kafka-go). Ruler replicas shard by
// tenant and each reads all partitions, so there is no consumer group and
// nothing is committed: a restart seeks by time again.
type Reader struct {
	cfg       Config
	dialer    *kafkago.Dialer
	admin     *admin
	transport *kafkago.Transport
	logger    *slog.Logger
}

// NewReader returns a reader of cfg.Brokers; cfg.ConsumerGroup is not used.
func NewReader(cfg Config, logger *slog.Logger) (*Reader, error) {
	if err := errors.Join(cfg.RequireBrokers(), cfg.Validate()); err != nil {
		return nil, fmt.Errorf("kafka reader config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// TLS and SASL as every other client of the bus; the files are read
	// once, here.
	cfg, err := cfg.withSecurity()
	if err != nil {
		return nil, fmt.Errorf("kafka reader: %w", err)
	}
	transport := cfg.transport()
	return &Reader{cfg: cfg, dialer: cfg.dialer(), admin: newAdmin(cfg, transport), transport: transport, logger: logger}, nil
}

type partitionRange struct {
	id         int
	leader     string
	start, end int64
}

// Consume implements bus.Reader. It retries reaching the broker until ctx ends.
func (k *Reader) Consume(ctx context.Context, topic string, since time.Time, handle func(bus.Record), caughtUp func()) error {
	var (
		parts []partitionRange
		err   error
	)
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		if parts, err = k.topicRanges(ctx, topic, since); err == nil {
			break
		}
		k.logger.Warn("read partition offsets, retrying", "topic", topic, "backoff", backoff, "err", err)
		if !service.Sleep(ctx, backoff) {
			return nil
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		behind  = len(parts)
		errs    []error
		reached = func() {
			mu.Lock()
			behind--
			last := behind == 0
			mu.Unlock()
			if last {
				caughtUp()
			}
		}
	)
	if behind == 0 {
		caughtUp()
	}
	for _, p := range parts {
		wg.Go(func() {
			if err := k.consumePartition(ctx, topic, p, handle, reached); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// topicRanges creates topic if it is missing, as subscribers and
// publishers do: a reader started first on a new cluster (the ruler,
// before any alert was published to topic-alerts) would otherwise wait
// for a topic nobody creates. Then it returns the topic's ranges.
func (k *Reader) topicRanges(ctx context.Context, topic string, since time.Time) ([]partitionRange, error) {
	err := k.admin.ensureTopics(ctx, topic)
	k.transport.CloseIdleConnections() // a reader has no Close: nothing kept open
	if err != nil {
		return nil, err
	}
	return k.ranges(ctx, topic, since)
}

// ranges finds every partition's leader, its offset for since and its end.
func (k *Reader) ranges(ctx context.Context, topic string, since time.Time) (_ []partitionRange, err error) {
	dialer := k.dialer
	var conn *kafkago.Conn
	for _, b := range k.cfg.Brokers {
		if conn, err = dialer.DialContext(ctx, "tcp", b); err == nil {
			break
		}
	}
	if conn == nil {
		return nil, fmt.Errorf("dial brokers %v: %w", []string(k.cfg.Brokers), err)
	}
	defer func() { err = errors.Join(err, conn.Close()) }()
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, fmt.Errorf("read partitions of %s: %w", topic, err)
	}
	out := make([]partitionRange, 0, len(ps))
	for _, p := range ps {
		leader := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
		lc, err := dialer.DialLeader(ctx, "tcp", leader, topic, p.ID)
		if err != nil {
			return nil, fmt.Errorf("dial leader of %s/%d: %w", topic, p.ID, err)
		}
		start, serr := lc.ReadOffset(since)
		end, eerr := lc.ReadLastOffset()
		if err := errors.Join(serr, eerr, lc.Close()); err != nil {
			return nil, fmt.Errorf("read offsets of %s/%d: %w", topic, p.ID, err)
		}
		if start < 0 || start > end { // no record at or after since
			start = end
		}
		out = append(out, partitionRange{id: p.ID, leader: leader, start: start, end: end})
	}
	return out, nil
}

func (k *Reader) consumePartition(ctx context.Context, topic string, p partitionRange, handle func(bus.Record), reached func()) (err error) {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   []string(k.cfg.Brokers),
		Topic:     topic,
		Partition: p.id,
		Dialer:    k.dialer,
		MinBytes:  1,
		MaxBytes:  k.cfg.FetchMaxBytes,
		MaxWait:   k.cfg.FetchMaxWait,
	})
	defer func() {
		if cerr := r.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close reader of %s/%d: %w", topic, p.id, cerr))
		}
	}()
	if err := r.SetOffset(p.start); err != nil {
		return fmt.Errorf("seek %s/%d to %d: %w", topic, p.id, p.start, err)
	}
	caught := p.start >= p.end
	if caught {
		reached()
	}
	failing := false
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The reader reconnects by itself (a broker restart, a moved
			// leader): warn once per outage and keep reading.
			lvl := slog.LevelWarn
			if failing {
				lvl = slog.LevelDebug
			}
			failing = true
			k.logger.Log(ctx, lvl, "read partition, retrying", "topic", topic, "partition", p.id, "err", err)
			if !service.Sleep(ctx, 100*time.Millisecond) {
				return nil
			}
			continue
		}
		if failing {
			failing = false
			k.logger.Info("read partition recovered", "topic", topic, "partition", p.id)
		}
		rec := bus.Record{Topic: topic, Partition: p.id, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time, Headers: make(map[string]string, len(m.Headers))}
		for _, h := range m.Headers {
			rec.Headers[h.Key] = string(h.Value)
		}
		handle(rec)
		if !caught && m.Offset >= p.end-1 {
			caught = true
			reached()
		}
	}
}
