package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// ErrSubscriberClosed is returned by Subscribe after Close.
var ErrSubscriberClosed = errors.New("nats subscriber closed")

// errResetUnsupported: consumer reset came with nats-server 2.14.
var errResetUnsupported = errors.New("nats-server before 2.14 cannot reset a consumer")

// pinGroup is the priority group of every partition consumer: the server
// pins a partition to one subscriber of the consumer group at a time, as a
// Kafka group assigns it to one member, so its messages keep their order.
const pinGroup = "tmaflow"

// Subscriber is a Watermill subscriber reading the partitions of a topic's
// stream.
//
// With a consumer group, each partition has one durable pull consumer per
// group (<group>_p<n>), pinned to one subscriber at a time. The partitions
// are read concurrently, each in order, with at most MaxInFlight messages
// unacknowledged; a Nack delivers the same message again (after the nack
// backoff) and nothing behind it is skipped. Messages are acknowledged to
// the server only once the handler acknowledged them and every message
// before them, so after a crash the server delivers again from the first
// unacknowledged one, as a Kafka group resumes from its committed offset.
// At shutdown, what was handed out and not acknowledged is given back
// (Nak) for the next subscriber of the group. Delivery is at least once.
//
// Without a consumer group every Subscribe call reads all partitions from
// the start with ordered consumers and acknowledges nothing.
type Subscriber struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	streams *streams
	logger  *slog.Logger
	metrics *subscriberMetrics

	mu      sync.Mutex
	closed  bool
	closing chan struct{}
	subs    sync.WaitGroup
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
	_ bus.Subscriber               = (*Subscriber)(nil)
)

// NewSubscriber returns a subscriber in cfg.ConsumerGroup (none if empty).
// logger and reg may be nil.
func NewSubscriber(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Subscriber, error) {
	c, err := open(cfg, "subscriber", logger)
	if err != nil {
		return nil, err
	}
	return &Subscriber{
		cfg:     cfg,
		nc:      c.nc,
		js:      c.js,
		streams: newStreams(c.js, cfg),
		logger:  c.logger,
		metrics: newSubscriberMetrics(reg),
		closing: make(chan struct{}),
	}, nil
}

// SubscribeInitialize creates topic's stream if it is missing.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	_, err := s.streams.ensure(ctx, topic)
	return err
}

// Subscribe creates topic's stream if missing and starts consuming it. The
// channel is closed when ctx ends or the subscriber is closed; the
// contexts of messages handed out are canceled then too, and after their
// Ack or Nack.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrSubscriberClosed
	}
	s.subs.Add(1)
	s.mu.Unlock()

	initCtx, cancelInit := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	ts, err := s.streams.ensure(initCtx, topic)
	cancelInit()
	if err != nil {
		s.subs.Done()
		return nil, fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan *message.Message)
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
		var wg sync.WaitGroup
		for p := range ts.partitions {
			wg.Go(func() {
				pc := &partitionConsumer{s: s, ts: ts, partition: p, group: s.cfg.ConsumerGroup, out: out}
				pc.run(ctx)
			})
		}
		wg.Wait()
	}()
	return out, nil
}

// Close ends every subscription, gives back what was not acknowledged and
// waits until the channels are closed.
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
	s.nc.Close()
	return nil
}

// partitionConsumer delivers one partition of one subscription.
type partitionConsumer struct {
	s         *Subscriber
	ts        *topicStream
	partition int
	group     string
	out       chan<- *message.Message

	slots  chan struct{} // one per message handed out
	wg     sync.WaitGroup
	lag    prometheus.Gauge
	pinned bool // the server pins the partition (nats-server 2.11 and later)

	mu      sync.Mutex
	pending []*delivery // handed out, not yet acknowledged to the server, in order
	pinID   string      // the server's pin of this subscriber, from delivered headers
}

// delivery is one message handed out.
type delivery struct {
	jm   jetstream.Msg
	seq  uint64
	md   *jetstream.MsgMetadata
	done bool // acknowledged by the handler
}

func (pc *partitionConsumer) run(ctx context.Context) {
	s := pc.s
	pc.slots = make(chan struct{}, s.cfg.MaxInFlight)
	partition := strconv.Itoa(pc.partition)
	pc.lag = s.metrics.lag.WithLabelValues(pc.ts.topic, pc.group, partition)
	defer s.metrics.lag.DeleteLabelValues(pc.ts.topic, pc.group, partition)

	it, ok := pc.iterator(ctx)
	if !ok {
		return
	}
	defer pc.giveBack(it)
	if pc.group != "" {
		go pc.keepAlive(ctx)
	}
	failing := false
	var prev *bus.Turn
	for {
		select {
		case pc.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		jm, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			<-pc.slots
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			// The iterator keeps pulling by itself (reconnects, missed
			// heartbeats): warn once per outage.
			lvl := slog.LevelWarn
			if failing {
				lvl = slog.LevelDebug
			}
			failing = true
			s.logger.Log(ctx, lvl, "fetch", "topic", pc.ts.topic, "partition", pc.partition, "err", err)
			if !service.Sleep(ctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		if failing {
			failing = false
			s.logger.Info("fetch recovered", "topic", pc.ts.topic, "partition", pc.partition)
		}
		d, fresh := pc.track(jm)
		if !fresh {
			// Delivered again by the server while still handed out here
			// (an ack wait passed during an outage): it is acknowledged
			// once the handler is done with the first delivery.
			<-pc.slots
			continue
		}
		var turn *bus.Turn
		if cap(pc.slots) > 1 {
			turn = bus.NewTurn(prev)
			prev = turn
		}
		msg, msgCancel := pc.message(ctx, d, turn)
		select {
		case pc.out <- msg:
		case <-ctx.Done():
			msgCancel()
			<-pc.slots
			return
		}
		pc.wg.Add(1)
		go pc.await(ctx, d, msg, msgCancel, turn)
	}
}

// iterator creates the partition's consumer (durable and pinned with a
// group, ordered without) and starts pulling, retrying until ctx ends.
func (pc *partitionConsumer) iterator(ctx context.Context) (jetstream.MessagesContext, bool) {
	s := pc.s
	cfg := s.cfg
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		var (
			cons jetstream.Consumer
			err  error
		)
		opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(cfg.MaxInFlight)}
		if pc.group == "" {
			cons, err = s.js.OrderedConsumer(ctx, pc.ts.stream, jetstream.OrderedConsumerConfig{
				FilterSubjects: []string{pc.ts.subject(pc.partition)},
				DeliverPolicy:  jetstream.DeliverAllPolicy,
			})
		} else {
			pc.pinned = atLeast(s.nc, 2, 11)
			cons, err = s.js.CreateOrUpdateConsumer(ctx, pc.ts.stream, pc.consumerConfig())
			// Pull requests outlive the pin no longer than half its TTL;
			// without pinning the same short expiry bounds how long a
			// pull request the server dropped (a busy or restarting
			// server) stalls the partition: nats.go's default is 30s.
			opts = append(opts, jetstream.PullExpiry(max(cfg.PinnedTTL/2, time.Second)))
			if pc.pinned {
				opts = append(opts, jetstream.PullPriorityGroup(pinGroup))
			}
		}
		var it jetstream.MessagesContext
		if err == nil {
			it, err = cons.Messages(opts...)
		}
		if err == nil {
			return it, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		s.logger.Warn("create partition consumer, retrying", "topic", pc.ts.topic, "group", pc.group, "partition", pc.partition, "backoff", backoff, "err", err)
		if !service.Sleep(ctx, backoff) {
			return nil, false
		}
	}
}

func (pc *partitionConsumer) consumerConfig() jetstream.ConsumerConfig {
	cfg := pc.s.cfg
	cc := jetstream.ConsumerConfig{
		Durable:       consumerName(pc.group, pc.partition),
		Description:   "tmaflow group " + pc.group + " on " + pc.ts.topic + " partition " + strconv.Itoa(pc.partition),
		FilterSubject: pc.ts.subject(pc.partition),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: cfg.MaxInFlight,
	}
	if pc.pinned {
		cc.PriorityPolicy, cc.PriorityGroups, cc.PinnedTTL = jetstream.PriorityPolicyPinned, []string{pinGroup}, cfg.PinnedTTL
	}
	return cc
}

// atLeast reports whether the connected server is version major.minor or
// later.
func atLeast(nc *nats.Conn, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(nc.ConnectedServerVersion(), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// track adds a delivered message to the window; fresh is false for a
// message the window already holds.
func (pc *partitionConsumer) track(jm jetstream.Msg) (d *delivery, fresh bool) {
	md, err := jm.Metadata()
	if err != nil {
		// Only a message that is not from JetStream has none; the iterator
		// hands out nothing else.
		md = &jetstream.MsgMetadata{}
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pin := jm.Headers().Get("Nats-Pin-Id"); pin != "" {
		pc.pinID = pin
	}
	for _, p := range pc.pending {
		if p.seq == md.Sequence.Stream {
			return p, false
		}
	}
	d = &delivery{jm: jm, seq: md.Sequence.Stream, md: md}
	pc.pending = append(pc.pending, d)
	return d, true
}

func (pc *partitionConsumer) message(ctx context.Context, d *delivery, turn *bus.Turn) (*message.Message, context.CancelFunc) {
	topic := pc.ts.topic
	msg, err := fromNATS(d.jm.Headers(), d.jm.Data(), topic+"-"+strconv.Itoa(pc.partition)+"-"+strconv.FormatUint(d.seq, 10))
	if err != nil {
		pc.s.logger.Warn("undecodable header delivered as received", "topic", topic, "partition", pc.partition, "seq", d.seq, "err", err)
	}
	mctx := bus.WithPosition(ctx, bus.Position{
		Topic:         topic,
		Partition:     pc.partition,
		Offset:        int64(d.seq),
		HighWaterMark: int64(d.seq + d.md.NumPending + 1),
		Time:          d.md.Timestamp,
	})
	if turn != nil {
		mctx = bus.WithTurn(mctx, turn)
	}
	mctx, cancel := context.WithCancel(mctx)
	msg.SetContext(mctx)
	return msg, cancel
}

// await waits for msg's acknowledgement, delivering it again after each
// Nack, and frees its slot.
func (pc *partitionConsumer) await(ctx context.Context, d *delivery, msg *message.Message, cancel context.CancelFunc, turn *bus.Turn) {
	s := pc.s
	defer pc.wg.Done()
	defer func() { <-pc.slots }()
	release := func() {
		cancel()
		if turn != nil {
			turn.Release()
		}
	}
	for {
		select {
		case <-msg.Acked():
			release()
			pc.acknowledged(d)
			return
		case <-msg.Nacked():
			release()
			s.metrics.nacked.WithLabelValues(pc.ts.topic, pc.group).Inc()
			if !service.Sleep(ctx, s.cfg.NackBackoff) {
				return
			}
			// Delivered again out of turn: the messages behind it did not
			// wait for it.
			msg, cancel = pc.message(ctx, d, nil)
			turn = nil
			select {
			case pc.out <- msg:
			case <-ctx.Done():
				cancel()
				return
			}
		case <-ctx.Done():
			release()
			select {
			case <-msg.Acked():
				pc.acknowledged(d)
			default:
			}
			return
		}
	}
}

// acknowledged marks d done and acknowledges to the server every done
// message at the front of the window: a message is acknowledged only when
// every message before it was.
func (pc *partitionConsumer) acknowledged(d *delivery) {
	s := pc.s
	s.metrics.consumed.WithLabelValues(pc.ts.topic, pc.group).Inc()
	pc.lag.Set(float64(d.md.NumPending))
	pc.mu.Lock()
	d.done = true
	var front []*delivery
	for len(pc.pending) > 0 && pc.pending[0].done {
		front = append(front, pc.pending[0])
		pc.pending = pc.pending[1:]
	}
	pc.mu.Unlock()
	if pc.group == "" {
		return
	}
	for _, f := range front {
		if err := f.jm.Ack(); err != nil {
			s.metrics.ackErrs.WithLabelValues(pc.ts.topic, pc.group).Inc()
			s.logger.Debug("ack", "topic", pc.ts.topic, "group", pc.group, "partition", pc.partition, "seq", f.seq, "err", err)
		}
	}
}

// keepAlive tells the server, every third of the ack wait, that the
// messages handed out and not yet acknowledged are still being worked on,
// so it does not deliver them again while a handler is slow or the
// messages behind a slow one wait for it.
func (pc *partitionConsumer) keepAlive(ctx context.Context) {
	t := time.NewTicker(pc.s.cfg.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pc.mu.Lock()
		held := append([]*delivery(nil), pc.pending...)
		pc.mu.Unlock()
		for _, d := range held {
			if err := d.jm.InProgress(); err != nil {
				pc.s.logger.Debug("in progress", "topic", pc.ts.topic, "partition", pc.partition, "seq", d.seq, "err", err)
			}
		}
	}
}

// giveBack ends the partition's consumption once every handler is done:
// it stops pulling and resets the consumer to its ack floor, so the next
// subscriber of the group goes on at once, in order, from the first
// message not acknowledged (as a Kafka group resumes from its committed
// offset), and releases the pin.
func (pc *partitionConsumer) giveBack(it jetstream.MessagesContext) {
	pc.wg.Wait()
	if pc.group == "" {
		it.Stop()
		return
	}
	s := pc.s
	// Stopped first: a pull request still open would take what is given
	// back.
	it.Drain()
	var buffered []jetstream.Msg
	for {
		jm, err := it.Next(jetstream.NextMaxWait(100 * time.Millisecond))
		if err != nil {
			break
		}
		buffered = append(buffered, jm)
	}
	pc.mu.Lock()
	held := pc.pending
	pc.pending = nil
	pin := pc.pinID
	pc.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	name := consumerName(pc.group, pc.partition)
	if len(held) > 0 || len(buffered) > 0 {
		err := errResetUnsupported
		if atLeast(s.nc, 2, 14) {
			_, err = s.js.ResetConsumer(ctx, pc.ts.stream, name)
		}
		if err != nil {
			// Before nats-server 2.14 give each back (Nak); the server
			// may deliver them out of order then.
			s.logger.Debug("reset consumer, giving back one by one", "topic", pc.ts.topic, "group", pc.group, "partition", pc.partition, "err", err)
			pc.nakAll(held, buffered)
		}
	}
	if pin == "" || !pc.pinned {
		return
	}
	cons, err := s.js.Consumer(ctx, pc.ts.stream, name)
	if err != nil {
		return
	}
	for _, g := range cons.CachedInfo().PriorityGroups {
		if g.Group != pinGroup || g.PinnedClientID != pin {
			continue
		}
		st, err := s.js.Stream(ctx, pc.ts.stream)
		if err == nil {
			err = st.UnpinConsumer(ctx, name, pinGroup)
		}
		if err != nil {
			s.logger.Debug("unpin", "topic", pc.ts.topic, "group", pc.group, "partition", pc.partition, "err", err)
		}
	}
}

// nakAll acknowledges what the handler acknowledged and gives back what
// was handed out and not acknowledged, then what the iterator had
// buffered, in order.
func (pc *partitionConsumer) nakAll(held []*delivery, buffered []jetstream.Msg) {
	given := map[uint64]bool{}
	for _, d := range held {
		given[d.seq] = true
		ack := d.jm.Nak
		if d.done {
			ack = d.jm.Ack
		}
		if err := ack(); err != nil {
			pc.s.logger.Debug("give back", "topic", pc.ts.topic, "group", pc.group, "partition", pc.partition, "seq", d.seq, "err", err)
		}
	}
	for _, jm := range buffered {
		if md, err := jm.Metadata(); err == nil && given[md.Sequence.Stream] {
			continue
		}
		if err := jm.Nak(); err != nil {
			pc.s.logger.Debug("give back", "topic", pc.ts.topic, "group", pc.group, "partition", pc.partition, "err", err)
		}
	}
}
