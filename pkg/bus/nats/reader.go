package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Reader is a bus.Reader on JetStream: an ordered consumer per partition,
// from the first message stored at or after a time. Nothing is
// acknowledged and nothing stays on the server: a restart reads by time
// again. Each Consume has a connection of its own, closed when it returns.
type Reader struct {
	cfg    Config
	logger *slog.Logger
}

// reading is one Consume call's connection.
type reading struct {
	*Reader
	js      jetstream.JetStream
	streams *streams
}

var _ bus.Reader = (*Reader)(nil)

// NewReader connects to cfg.URL; cfg.ConsumerGroup is not used.
func NewReader(cfg Config, logger *slog.Logger) (*Reader, error) {
	if err := errors.Join(cfg.RequireURL(), cfg.Validate()); err != nil {
		return nil, fmt.Errorf("nats reader config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Reader{cfg: cfg, logger: logger}, nil
}

// Consume implements bus.Reader. It retries reaching the server until ctx
// ends.
func (rd *Reader) Consume(ctx context.Context, topic string, since time.Time, handle func(bus.Record), caughtUp func()) error {
	nc, js, err := connect(rd.cfg, rd.logger)
	if err != nil {
		return err
	}
	defer nc.Close()
	r := &reading{Reader: rd, js: js, streams: newStreams(js, rd.cfg)}
	var (
		ts   *topicStream
		ends []uint64
	)
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		if ts, err = r.streams.ensure(ctx, topic); err == nil {
			if ends, err = r.ends(ctx, ts); err == nil {
				break
			}
		}
		r.logger.Warn("read partition ends, retrying", "topic", topic, "backoff", backoff, "err", err)
		if !service.Sleep(ctx, backoff) {
			return nil
		}
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		behind  = ts.partitions
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
	for p := range ts.partitions {
		wg.Go(func() { r.consumePartition(ctx, ts, p, since, ends[p], handle, reached) })
	}
	wg.Wait()
	return nil
}

// ends returns the stream sequence of each partition's last message (0:
// none) when Consume began.
func (r *reading) ends(ctx context.Context, ts *topicStream) ([]uint64, error) {
	st, err := r.js.Stream(ctx, ts.stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", ts.stream, err)
	}
	ends := make([]uint64, ts.partitions)
	for p := range ts.partitions {
		m, err := st.GetLastMsgForSubject(ctx, ts.subject(p))
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return nil, fmt.Errorf("last message of %s: %w", ts.subject(p), err)
		default:
			ends[p] = m.Sequence
		}
	}
	return ends, nil
}

func (r *reading) consumePartition(ctx context.Context, ts *topicStream, p int, since time.Time, end uint64, handle func(bus.Record), reached func()) {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{ts.subject(p)}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	caught := end == 0
	if caught {
		reached()
	}
	var it jetstream.MessagesContext
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		cons, err := r.js.OrderedConsumer(ctx, ts.stream, cfg)
		if err == nil {
			if it, err = cons.Messages(jetstream.PullMaxMessages(r.cfg.MaxInFlight)); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			return
		}
		r.logger.Warn("create ordered consumer, retrying", "topic", ts.topic, "partition", p, "backoff", backoff, "err", err)
		if !service.Sleep(ctx, backoff) {
			return
		}
	}
	defer it.Stop()
	failing := false
	for {
		jm, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			// The ordered consumer recreates itself after a gap or an
			// outage: warn once per outage and keep reading.
			lvl := slog.LevelWarn
			if failing {
				lvl = slog.LevelDebug
			}
			failing = true
			r.logger.Log(ctx, lvl, "read partition, retrying", "topic", ts.topic, "partition", p, "err", err)
			if !service.Sleep(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		if failing {
			failing = false
			r.logger.Info("read partition recovered", "topic", ts.topic, "partition", p)
		}
		md, err := jm.Metadata()
		if err != nil {
			md = &jetstream.MsgMetadata{}
		}
		msg, err := fromNATS(jm.Headers(), jm.Data(), "")
		if err != nil {
			r.logger.Warn("undecodable header delivered as received", "topic", ts.topic, "partition", p, "seq", md.Sequence.Stream, "err", err)
		}
		key := bus.Key(msg)
		delete(msg.Metadata, bus.MetadataKey)
		handle(bus.Record{
			Topic:     ts.topic,
			Partition: p,
			Offset:    int64(md.Sequence.Stream),
			Key:       key,
			Value:     msg.Payload,
			Headers:   msg.Metadata,
			Time:      md.Timestamp,
		})
		if !caught && md.Sequence.Stream >= end {
			caught = true
			reached()
		}
	}
}
