package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	kafka "github.com/segmentio/kafka-go"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// ErrSubscriberClosed is returned by Subscribe after Close.
var ErrSubscriberClosed = errors.New("kafka subscriber closed")

// Subscriber is a Watermill subscriber reading Kafka partitions.
//
// With a consumer group, every Subscribe call is one group member; the
// partitions assigned to it are read concurrently, each in order: the next
// record of a partition is delivered only after the previous one was
// acknowledged, a Nack delivers the same record again (after the nack
// backoff) and nothing behind it is skipped. Offsets are committed only for
// acknowledged records, in order per partition, every commit interval and
// when a partition is given up. Delivery is at least once.
//
// Without a consumer group every Subscribe call reads all partitions from
// the start offset and commits nothing.
type Subscriber struct {
	cfg     Config
	admin   *admin
	idle    idleCloser
	logger  *slog.Logger
	metrics *subscriberMetrics
	info    kafka.Logger
	errLog  kafka.Logger

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	subs    sync.WaitGroup
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber returns a subscriber in cfg.ConsumerGroup (none if empty).
// logger and reg may be nil.
func NewSubscriber(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Subscriber, error) {
	if err := errors.Join(cfg.RequireBrokers(), cfg.Validate()); err != nil {
		return nil, fmt.Errorf("kafka subscriber config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := cfg.withSecurity()
	if err != nil {
		return nil, err
	}
	transport := cfg.transport()
	info, errLog := clientLoggers(logger)
	return &Subscriber{
		cfg:     cfg,
		admin:   newAdmin(cfg, transport),
		idle:    transport,
		logger:  logger,
		metrics: newSubscriberMetrics(reg),
		info:    info,
		errLog:  errLog,
		closing: make(chan struct{}),
	}, nil
}

// SubscribeInitialize creates topic if it is missing.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	return s.admin.ensureTopics(ctx, topic)
}

// Subscribe creates topic if missing and starts consuming it. The channel
// is closed when ctx ends or the subscriber is closed; the contexts of
// messages handed out are canceled then too, and after their Ack or Nack.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSubscriberClosed
	}
	s.subs.Add(1)
	s.mu.Unlock()

	initCtx, cancelInit := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	err := s.admin.ensureTopics(initCtx, topic)
	cancelInit()
	if err != nil {
		s.subs.Done()
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}

	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *message.Message)
	sub := &subscription{s: s, topic: topic, group: s.cfg.ConsumerGroup, out: out}
	go func() {
		defer s.subs.Done()
		defer close(out)
		defer cancel()
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		if sub.group == "" {
			sub.runStandalone(ctx)
		} else {
			sub.runGroup(ctx)
		}
	}()
	return out, nil
}

// Close ends every subscription, commits what was acknowledged, leaves the
// groups and waits until the channels are closed.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.subs.Wait()
	s.idle.CloseIdleConnections()
	return nil
}

// subscription is one Subscribe call.
type subscription struct {
	s     *Subscriber
	topic string
	group string
	out   chan *message.Message
}

// runGroup joins the group and runs one generation after the other until
// ctx ends.
func (sub *subscription) runGroup(ctx context.Context) {
	cfg := sub.s.cfg
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    sub.group,
		Brokers:               cfg.Brokers,
		Dialer:                cfg.dialer(),
		Topics:                []string{sub.topic},
		HeartbeatInterval:     cfg.HeartbeatInterval,
		SessionTimeout:        cfg.SessionTimeout,
		RebalanceTimeout:      cfg.RebalanceTimeout,
		JoinGroupBackoff:      cfg.HeartbeatInterval,
		WatchPartitionChanges: true,
		StartOffset:           cfg.startOffset(),
		Logger:                sub.s.info,
		ErrorLogger:           sub.s.errLog,
	})
	if err != nil {
		// Only an invalid config fails here, and Validate caught that.
		sub.s.logger.Error("create consumer group", "group", sub.group, "topic", sub.topic, "err", err)
		return
	}
	var partitions sync.WaitGroup
	defer func() {
		if err := cg.Close(); err != nil {
			sub.s.logger.Warn("leave consumer group", "group", sub.group, "topic", sub.topic, "err", err)
		}
		partitions.Wait()
	}()
	failing := false
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			// The group retries by itself after the join backoff: warn once
			// per outage. Meeting a rebalance while joining is routine.
			lvl := slog.LevelWarn
			if failing || errors.Is(err, kafka.RebalanceInProgress) {
				lvl = slog.LevelDebug
			}
			failing = true
			sub.s.logger.Log(ctx, lvl, "join consumer group", "group", sub.group, "topic", sub.topic, "err", err)
			continue
		}
		failing = false
		sub.s.metrics.rebalances.WithLabelValues(sub.topic, sub.group).Inc()
		assigned := gen.Assignments[sub.topic]
		ids := make([]int, len(assigned))
		for i, a := range assigned {
			ids[i] = a.ID
		}
		sub.s.logger.Info("joined consumer group", "group", sub.group, "topic", sub.topic, "generation", gen.ID, "partitions", ids)

		oc := newOffsetCommitter(gen, sub.topic)
		for _, a := range assigned {
			// Counted here too: the group does not wait for functions
			// started on a generation that already ended, and out must not
			// be closed while one could still send.
			partitions.Add(1)
			gen.Start(func(gctx context.Context) {
				defer partitions.Done()
				sub.consumePartition(ctx, gctx, a.ID, a.Offset, oc)
				// Returning ends the generation; on our own shutdown wait
				// for Close to end it, so the group does not rejoin first.
				<-gctx.Done()
			})
		}
		if cfg.CommitInterval > 0 && len(assigned) > 0 {
			gen.Start(func(gctx context.Context) {
				t := time.NewTicker(cfg.CommitInterval)
				defer t.Stop()
				for {
					select {
					case <-gctx.Done():
						return
					case <-t.C:
						sub.commit(oc)
					}
				}
			})
		}
	}
}

// runStandalone reads every partition of the topic without a group.
func (sub *subscription) runStandalone(ctx context.Context) {
	var ids []int
	for {
		var err error
		if ids, err = sub.s.admin.partitionIDs(ctx, sub.topic); err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		sub.s.logger.Warn("list partitions", "topic", sub.topic, "err", err)
		if !service.Sleep(ctx, sub.s.cfg.HeartbeatInterval) {
			return
		}
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub.consumePartition(ctx, ctx, id, sub.s.cfg.startOffset(), nil)
		}()
	}
	wg.Wait()
}

// consumePartition delivers the records of one partition in order, from
// offset until ctx (the subscription) or gctx (the group generation)
// ends, with at most Config.MaxInFlight of them unacknowledged. oc is nil
// without a group.
func (sub *subscription) consumePartition(ctx, gctx context.Context, partition int, offset int64, oc *offsetCommitter) {
	cfg := sub.s.cfg
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     cfg.Brokers,
		Topic:       sub.topic,
		Partition:   partition,
		Dialer:      cfg.dialer(),
		MinBytes:    1,
		MaxBytes:    cfg.FetchMaxBytes,
		MaxWait:     cfg.FetchMaxWait,
		Logger:      sub.s.info,
		ErrorLogger: sub.s.errLog,
	})
	fetchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(gctx, cancel)
	defer stop()

	w := &window{
		sub:       sub,
		partition: partition,
		oc:        oc,
		slots:     make(chan struct{}, max(cfg.MaxInFlight, 1)),
		lag:       sub.s.metrics.lag.WithLabelValues(sub.topic, sub.group, strconv.Itoa(partition)),
		giveUp:    cancel,
	}
	defer func() {
		// Every delivery ends before the offsets are committed and out
		// may be closed.
		w.wg.Wait()
		if err := r.Close(); err != nil {
			sub.s.logger.Warn("close partition reader", "topic", sub.topic, "partition", partition, "err", err)
		}
		if oc != nil {
			sub.commit(oc)
		}
		sub.s.metrics.lag.DeleteLabelValues(sub.topic, sub.group, strconv.Itoa(partition))
	}()
	if err := r.SetOffset(offset); err != nil {
		sub.s.logger.Error("seek partition", "topic", sub.topic, "partition", partition, "offset", offset, "err", err)
		return
	}

	failing := false
	var prev *bus.Turn
	for {
		select {
		case w.slots <- struct{}{}:
		case <-fetchCtx.Done():
			return
		}
		rec, err := r.FetchMessage(fetchCtx)
		if err != nil {
			<-w.slots
			if fetchCtx.Err() != nil {
				return
			}
			// The reader retries by itself and reports each failed attempt
			// after the first few: warn once per outage.
			lvl := slog.LevelWarn
			if failing {
				lvl = slog.LevelDebug
			}
			failing = true
			sub.s.logger.Log(fetchCtx, lvl, "fetch", "topic", sub.topic, "partition", partition, "err", err)
			continue
		}
		if failing {
			failing = false
			sub.s.logger.Info("fetch recovered", "topic", sub.topic, "partition", partition)
		}
		var turn *bus.Turn
		if cap(w.slots) > 1 {
			turn = bus.NewTurn(prev)
			prev = turn
		}
		msg, msgCancel := w.message(ctx, rec, turn)
		w.track(rec.Offset)
		select {
		case sub.out <- msg:
		case <-fetchCtx.Done():
			msgCancel()
			return
		}
		w.wg.Add(1)
		go w.await(ctx, gctx, fetchCtx, rec, msg, msgCancel, turn)
	}
}

// window is one partition's records handed out and not yet acknowledged.
type window struct {
	sub       *subscription
	partition int
	oc        *offsetCommitter
	slots     chan struct{} // one per record handed out
	lag       prometheus.Gauge
	giveUp    func() // ends the partition's consumption
	wg        sync.WaitGroup

	mu      sync.Mutex
	pending []int64        // offsets handed out, in order
	done    map[int64]bool // acknowledged, not yet at the front
}

func (w *window) message(ctx context.Context, rec kafka.Message, turn *bus.Turn) (*message.Message, context.CancelFunc) {
	msg := toMessage(rec)
	mctx := withRecord(ctx, rec)
	if turn != nil {
		mctx = bus.WithTurn(mctx, turn)
	}
	mctx, cancel := context.WithCancel(mctx)
	msg.SetContext(mctx)
	return msg, cancel
}

func (w *window) track(offset int64) {
	w.mu.Lock()
	w.pending = append(w.pending, offset)
	w.mu.Unlock()
}

// acknowledged records the ack of offset and moves the partition's
// committable offset past every acknowledged record at the front: an
// offset is committed only when every record before it was acknowledged.
func (w *window) acknowledged(offset int64) {
	w.mu.Lock()
	if w.done == nil {
		w.done = map[int64]bool{}
	}
	w.done[offset] = true
	next := int64(-1)
	for len(w.pending) > 0 && w.done[w.pending[0]] {
		delete(w.done, w.pending[0])
		next = w.pending[0] + 1
		w.pending = w.pending[1:]
	}
	w.mu.Unlock()
	if next >= 0 && w.oc != nil {
		w.oc.ack(w.partition, next)
		if w.sub.s.cfg.CommitInterval == 0 {
			w.sub.commit(w.oc)
		}
	}
}

// await waits for msg's acknowledgement, delivering the record again after
// each Nack, and frees its slot. When the subscription or generation ends
// first, or the record is abandoned, it ends the partition's consumption.
// On a rebalance the handler gets half the rebalance timeout to finish, so
// its offset can be committed before the partition moves to another
// member.
func (w *window) await(ctx, gctx, both context.Context, rec kafka.Message, msg *message.Message, cancel context.CancelFunc, turn *bus.Turn) {
	sub := w.sub
	defer w.wg.Done()
	defer func() { <-w.slots }()
	release := func() {
		cancel()
		if turn != nil {
			turn.Release()
		}
	}
	ok := false
	defer func() {
		if !ok {
			w.giveUp()
		}
	}()
	for {
		select {
		case <-msg.Acked():
			release()
			ok = true
		case <-msg.Nacked():
			release()
			sub.s.metrics.nacked.WithLabelValues(sub.topic, sub.group).Inc()
			if !service.Sleep(both, sub.s.cfg.NackBackoff) {
				return
			}
			// Delivered again out of turn: the records behind it did not
			// wait for it.
			msg, cancel = w.message(ctx, rec, nil)
			turn = nil
			select {
			case sub.out <- msg:
			case <-both.Done():
				cancel()
				return
			}
			continue
		case <-ctx.Done():
			release()
			ok = acked(msg)
		case <-gctx.Done():
			ok = sub.drain(ctx, msg)
			release()
		}
		break
	}
	if !ok {
		return
	}
	sub.s.metrics.consumed.WithLabelValues(sub.topic, sub.group).Inc()
	w.lag.Set(float64(max(rec.HighWaterMark-rec.Offset-1, 0)))
	w.acknowledged(rec.Offset)
}

// acked reports whether msg was acknowledged, without waiting.
func acked(msg *message.Message) bool {
	select {
	case <-msg.Acked():
		return true
	default:
		return false
	}
}

func (sub *subscription) drain(ctx context.Context, msg *message.Message) bool {
	t := time.NewTimer(sub.s.cfg.RebalanceTimeout / 2)
	defer t.Stop()
	select {
	case <-msg.Acked():
		return true
	case <-msg.Nacked():
	case <-ctx.Done():
	case <-t.C:
		sub.s.logger.Warn("rebalance abandons unacknowledged message", "topic", sub.topic, "group", sub.group, "uuid", msg.UUID)
	}
	return false
}

func (sub *subscription) commit(oc *offsetCommitter) {
	first, err := oc.commit()
	if err == nil {
		return
	}
	sub.s.metrics.commitErrs.WithLabelValues(sub.topic, sub.group).Inc()
	// A failed commit usually means the generation is over; every partition
	// of it would report the same.
	lvl := slog.LevelDebug
	if first {
		lvl = slog.LevelWarn
	}
	sub.s.logger.Log(context.Background(), lvl, "commit offsets", "topic", sub.topic, "group", sub.group, "err", err)
}

// offsetCommitter collects the acknowledged offsets of one generation and
// commits them. Commits are serialized and each sends the latest state, so
// a committed offset never moves back.
type offsetCommitter struct {
	gen   generation
	topic string

	commitMu sync.Mutex
	failed   bool // guarded by commitMu
	mu       sync.Mutex
	acked    map[int]int64
	done     map[int]int64
}

// generation is the part of *kafka.Generation the committer uses.
type generation interface {
	CommitOffsets(offsets map[string]map[int]int64) error
}

func newOffsetCommitter(gen generation, topic string) *offsetCommitter {
	return &offsetCommitter{gen: gen, topic: topic, acked: map[int]int64{}, done: map[int]int64{}}
}

// ack records next as the offset to resume partition from.
func (c *offsetCommitter) ack(partition int, next int64) {
	c.mu.Lock()
	c.acked[partition] = next
	c.mu.Unlock()
}

// commit sends the acknowledged offsets not yet committed. first reports
// the generation's first failure.
func (c *offsetCommitter) commit() (first bool, err error) {
	c.commitMu.Lock()
	defer c.commitMu.Unlock()
	c.mu.Lock()
	dirty := map[int]int64{}
	for p, o := range c.acked {
		if c.done[p] != o {
			dirty[p] = o
		}
	}
	c.mu.Unlock()
	if len(dirty) == 0 {
		return false, nil
	}
	if err := c.gen.CommitOffsets(map[string]map[int]int64{c.topic: dirty}); err != nil {
		first, c.failed = !c.failed, true
		return first, fmt.Errorf("commit %s %v: %w", c.topic, dirty, err)
	}
	c.mu.Lock()
	for p, o := range dirty {
		c.done[p] = o
	}
	c.mu.Unlock()
	return false, nil
}
