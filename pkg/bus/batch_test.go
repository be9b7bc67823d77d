package bus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

func TestBatchConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*bus.BatchConfig)
		wantErr string
	}{
		{name: "defaults", edit: func(*bus.BatchConfig) {}},
		{name: "linger", edit: func(c *bus.BatchConfig) { c.Linger = time.Millisecond }},
		{name: "no records", edit: func(c *bus.BatchConfig) { c.MaxRecords = 0 }, wantErr: "bus.batch.max-records"},
		{name: "no bytes", edit: func(c *bus.BatchConfig) { c.MaxBytes = 0 }, wantErr: "bus.batch.max-bytes"},
		{name: "negative linger", edit: func(c *bus.BatchConfig) { c.Linger = -1 }, wantErr: "bus.batch.linger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := bus.DefaultBatchConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	_, err := bus.NewBatchConsumer(bus.BatchOptions{})
	require.ErrorIs(t, err, bus.ErrNoDLQ)
}

// batchRecorder is a batch handler that fails records by payload (as
// failing does), records the effects of the records it completed in the
// order it completed them, and the sizes of the batches it got.
type batchRecorder struct {
	f *failing

	mu      sync.Mutex
	effects []string
	sizes   []int
}

func (b *batchRecorder) handle(_ context.Context, msgs []*message.Message) []error {
	b.mu.Lock()
	b.sizes = append(b.sizes, len(msgs))
	b.mu.Unlock()
	var errs []error
	for i, m := range msgs {
		err := b.f.handle(m)
		if err != nil && errs == nil {
			errs = make([]error, len(msgs))
		}
		if err != nil {
			errs[i] = err
			continue
		}
		b.mu.Lock()
		b.effects = append(b.effects, string(m.Payload))
		b.mu.Unlock()
	}
	return errs
}

// runBatch starts a batch consumer of topic-monitor and returns its
// metrics registry; the consumer stops at the end of the test.
func runBatch(t *testing.T, pub message.Publisher, sub message.Subscriber, h bus.BatchHandler, maxRetries int) *prometheus.Registry {
	t.Helper()
	reg, _ := startBatch(t, pub, sub, h, maxRetries)
	return reg
}

// startBatch is runBatch that also returns stop, which ends the consumer
// (its subscriber committing what was acknowledged) before the test does.
func startBatch(t *testing.T, pub message.Publisher, sub message.Subscriber, h bus.BatchHandler, maxRetries int) (*prometheus.Registry, func()) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	c, err := bus.NewBatchConsumer(bus.BatchOptions{
		Name:       "label",
		Topic:      contract.TopicMonitor,
		Subscriber: sub,
		Handler:    h,
		Config:     bus.RouterConfig{MaxRetries: maxRetries, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, CloseTimeout: 5 * time.Second},
		Stage:      "labeler",
		DLQ:        pub,
		Logger:     logger,
		Registerer: reg,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-done)
		})
	}
	t.Cleanup(stop)
	select {
	case <-c.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("batch consumer did not start")
	}
	return reg, stop
}

// publishAll publishes the payloads to topic-monitor under one key, in
// order.
func publishAll(t *testing.T, pub message.Publisher, payloads []string) {
	t.Helper()
	key := contract.ResourceKey(42)
	for _, p := range payloads {
		m := message.NewMessage(watermill.NewUUID(), []byte(p))
		bus.SetKey(m, key)
		m.Metadata.Set(contract.HeaderTenant, "acme")
		require.NoError(t, pub.Publish(contract.TopicMonitor, m))
	}
}

// readDead reads n dead letters, by payload.
func readDead(t *testing.T, sub message.Subscriber, n int) map[string]*message.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dlq, err := sub.Subscribe(ctx, contract.TopicDLQ)
	require.NoError(t, err)
	dead := map[string]*message.Message{}
	for len(dead) < n {
		select {
		case m := <-dlq:
			m.Ack()
			dead[string(m.Payload)] = m
		case <-time.After(15 * time.Second):
			t.Fatalf("dead letters: got %d of %d", len(dead), n)
		}
	}
	return dead
}

func okPayloads(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ok-%03d", i)
	}
	return out
}

// The batch path keeps the router's semantics per record: a transient
// error is retried, a permanent one and one still failing after the
// retries are dead-lettered with the router's headers, and their batch
// neighbours are done once, in the partition's order.
func TestBatchConsumer(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			pub, newSub := tr.new(t)
			oks := okPayloads(200)
			// Published before the consumer starts, so the Kafka
			// subscriber has whole fetches to hand over.
			payloads := append(append(append([]string{}, oks[:100]...), "once", "permanent", "always"), oks[100:]...)
			publishAll(t, pub, payloads)

			rec := &batchRecorder{f: &failing{attempts: map[string]int{}}}
			reg := runBatch(t, pub, newSub("labeler"), rec.handle, 2)

			dead := readDead(t, newSub("dlq-reader"), 2)
			key := contract.ResourceKey(42)
			for payload, wantErr := range map[string]string{
				"permanent": "decode: bad json",
				"always":    "store unavailable",
			} {
				m := dead[payload]
				require.NotNil(t, m, payload)
				require.Equal(t, key, bus.Key(m), "dead letters keep the original key")
				require.Equal(t, wantErr, m.Metadata.Get(contract.HeaderError))
				require.Equal(t, contract.TopicMonitor, m.Metadata.Get(contract.HeaderSourceTopic))
				require.Equal(t, "labeler", m.Metadata.Get(contract.HeaderStage))
				require.Equal(t, "acme", m.Metadata.Get(contract.HeaderTenant), "other headers are kept")
			}
			require.Eventually(t, func() bool {
				return gathered(t, reg, "tmaflow_bus_handled_messages_total", "ok") == 201
			}, 10*time.Second, 10*time.Millisecond)
			require.Equal(t, 2.0, gathered(t, reg, "tmaflow_bus_handled_messages_total", "dead_lettered"))

			rec.f.mu.Lock()
			for _, p := range oks {
				require.Equal(t, 1, rec.f.attempts[p], "%s is handled once: only failed records are retried", p)
			}
			require.Equal(t, 2, rec.f.attempts["once"])
			require.Equal(t, 1, rec.f.attempts["permanent"])
			require.Equal(t, 3, rec.f.attempts["always"], "retried twice")
			rec.f.mu.Unlock()

			rec.mu.Lock()
			defer rec.mu.Unlock()
			var okOrder []string
			for _, e := range rec.effects {
				if e != "once" {
					okOrder = append(okOrder, e)
				}
			}
			require.ElementsMatch(t, oks, okOrder)
			if tr.ordered {
				// gochannel replays a persistent topic concurrently, one
				// message at a time; Kafka and NATS hand over a
				// partition's fetch, in order.
				require.Equal(t, oks, okOrder, "records of one partition take effect in order")
				require.Greater(t, maxInt(rec.sizes), 1, "batch sizes %v", rec.sizes)
			}
		})
	}
}

// One poison record in a batch of 100: 99 take effect, 1 is in the DLQ
// with its reason, and the group's offsets are committed past both: the
// group's next consumer starts after them.
func TestBatchConsumerCommitsPastDeadLetter(t *testing.T) {
	for _, tr := range transports {
		if !tr.ordered {
			continue // gochannel replays a persistent topic to every subscriber: no offsets
		}
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			pub, newSub := tr.new(t)
			oks := okPayloads(99)
			publishAll(t, pub, append(append(append([]string{}, oks[:50]...), "permanent"), oks[50:]...))

			rec := &batchRecorder{f: &failing{attempts: map[string]int{}}}
			reg, stop := startBatch(t, pub, newSub("labeler"), rec.handle, 2)
			dead := readDead(t, newSub("dlq-reader"), 1)
			require.Equal(t, "decode: bad json", dead["permanent"].Metadata.Get(contract.HeaderError))
			require.Eventually(t, func() bool {
				return gathered(t, reg, "tmaflow_bus_handled_messages_total", "ok") == 99
			}, 10*time.Second, 10*time.Millisecond)
			rec.mu.Lock()
			require.Equal(t, oks, rec.effects, "the 99 take effect once, in order")
			rec.mu.Unlock()
			stop()

			publishAll(t, pub, []string{"after"})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			next, err := newSub("labeler").Subscribe(ctx, contract.TopicMonitor)
			require.NoError(t, err)
			select {
			case m := <-next:
				m.Ack()
				require.Equal(t, "after", string(m.Payload), "the group resumes past the 99 and the dead letter")
			case <-time.After(30 * time.Second):
				t.Fatal("the group's next consumer got nothing")
			}
		})
	}
}

// A panicking record is dead-lettered alone: its neighbours are handled
// again one by one and done.
func TestBatchConsumerIsolatesPanic(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			pub, newSub := tr.new(t)
			oks := okPayloads(50)
			publishAll(t, pub, append(append(append([]string{}, oks[:25]...), "panic"), oks[25:]...))
			var mu sync.Mutex
			done := map[string]bool{}
			reg := runBatch(t, pub, newSub("labeler"), func(_ context.Context, msgs []*message.Message) []error {
				var ok []string
				for _, m := range msgs {
					if string(m.Payload) == "panic" {
						var nilMap map[string]int
						nilMap["x"]++
					}
					ok = append(ok, string(m.Payload))
				}
				// Effects only when the whole call succeeded, as a handler
				// that publishes one batch at the end.
				mu.Lock()
				for _, p := range ok {
					done[p] = true
				}
				mu.Unlock()
				return nil
			}, 0)
			dead := readDead(t, newSub("dlq-reader"), 1)
			require.Contains(t, dead["panic"].Metadata.Get(contract.HeaderError), "handler panic: assignment to entry in nil map")
			require.Eventually(t, func() bool {
				return gathered(t, reg, "tmaflow_bus_handled_messages_total", "ok") == 50
			}, 10*time.Second, 10*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			for _, p := range oks {
				require.True(t, done[p], p)
			}
		})
	}
}

// A handler answering the wrong number of outcomes is a bug: nothing of
// its batch is taken as done.
func TestBatchConsumerWrongOutcomes(t *testing.T) {
	pub, newSub := transports[0].new(t)
	publishAll(t, pub, []string{"a"})
	reg := runBatch(t, pub, newSub("g"), func(context.Context, []*message.Message) []error {
		return []error{nil, nil}
	}, 0)
	dead := readDead(t, newSub("dlq-reader"), 1)
	require.Equal(t, "batch handler label answered 2 outcomes for 1 records", dead["a"].Metadata.Get(contract.HeaderError))
	require.Equal(t, 0.0, gathered(t, reg, "tmaflow_bus_handled_messages_total", "ok"))
}

// At shutdown a batch whose handler still fails is nacked, not
// dead-lettered: it comes again to the next consumer.
func TestBatchConsumerShutdownNacks(t *testing.T) {
	pub, newSub := transports[1].new(t)
	publishAll(t, pub, []string{"always"})
	f := &failing{attempts: map[string]int{}}
	called := make(chan struct{}, 100)
	reg := prometheus.NewPedanticRegistry()
	sub := newSub("g")
	c, err := bus.NewBatchConsumer(bus.BatchOptions{
		Name: "h", Topic: contract.TopicMonitor, Subscriber: sub, DLQ: pub, Logger: logger, Registerer: reg,
		Config: bus.RouterConfig{MaxRetries: 100, InitialInterval: 50 * time.Millisecond, MaxInterval: time.Second, CloseTimeout: time.Second},
		Handler: func(_ context.Context, msgs []*message.Message) []error {
			called <- struct{}{}
			return []error{f.handle(msgs[0])}
		},
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	<-called
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, 1.0, gathered(t, reg, "tmaflow_bus_handled_messages_total", "failed"))
	require.Equal(t, 0.0, gathered(t, reg, "tmaflow_bus_handled_messages_total", "dead_lettered"))

	// The next consumer of the group gets it again.
	again := make(chan string, 1)
	runBatch(t, pub, newSub("g"), func(_ context.Context, msgs []*message.Message) []error {
		select {
		case again <- string(msgs[0].Payload):
		default:
		}
		return nil
	}, 0)
	select {
	case p := <-again:
		require.Equal(t, "always", p)
	case <-time.After(15 * time.Second):
		t.Fatal("the nacked record did not come again")
	}
}

func maxInt(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}
