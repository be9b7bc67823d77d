package bus_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	natsbus "github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/bus/nats/natstest"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

func TestPermanent(t *testing.T) {
	base := errors.New("bad json")
	err := bus.Permanent(base)
	require.True(t, bus.IsPermanent(err))
	require.True(t, bus.IsPermanent(errors.Join(errors.New("x"), err)))
	require.ErrorIs(t, err, base)
	require.Equal(t, "bad json", err.Error())
	require.False(t, bus.IsPermanent(base))
	require.NoError(t, bus.Permanent(nil))
}

func TestKey(t *testing.T) {
	m := message.NewMessage("1", nil)
	require.Nil(t, bus.Key(m))
	bus.SetKey(m, []byte{})
	require.NotNil(t, bus.Key(m), "an empty key is a key")
	key := contract.ResourceKey(-1)
	bus.SetKey(m, key)
	require.Equal(t, key, bus.Key(m))
	bus.SetKey(m, nil)
	require.Nil(t, bus.Key(m))
}

func TestRouterConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*bus.RouterConfig)
		wantErr string
	}{
		{name: "defaults", edit: func(*bus.RouterConfig) {}},
		{name: "no retries", edit: func(c *bus.RouterConfig) { c.MaxRetries = 0 }},
		{name: "negative retries", edit: func(c *bus.RouterConfig) { c.MaxRetries = -1 }, wantErr: "bus.retry.max"},
		{name: "max below initial", edit: func(c *bus.RouterConfig) { c.MaxInterval = c.InitialInterval / 2 }, wantErr: "bus.retry.max-interval"},
		{name: "no close timeout", edit: func(c *bus.RouterConfig) { c.CloseTimeout = 0 }, wantErr: "bus.close-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := bus.DefaultRouterConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	_, err := bus.NewRouter(bus.RouterOptions{})
	require.ErrorIs(t, err, bus.ErrNoDLQ)
}

// transport builds the publisher and subscribers a router test runs on.
type transport struct {
	name string
	// ordered transports deliver the records of one partition in order.
	ordered bool
	new     func(t *testing.T) (pub message.Publisher, sub func(group string) message.Subscriber)
}

// logger discards: the handlers here fail on purpose.
var logger = slog.New(slog.DiscardHandler)

var transports = []transport{
	{name: "gochannel", new: func(t *testing.T) (message.Publisher, func(string) message.Subscriber) {
		ps := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NewSlogLogger(logger))
		t.Cleanup(func() { require.NoError(t, ps.Close()) })
		return ps, func(string) message.Subscriber { return ps }
	}},
	{name: "kafka", ordered: true, new: func(t *testing.T) (message.Publisher, func(string) message.Subscriber) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		require.NoError(t, err)
		t.Cleanup(c.Close)
		cfg := kafka.DefaultConfig()
		cfg.Brokers = c.ListenAddrs()
		cfg.HeartbeatInterval = 100 * time.Millisecond
		cfg.SessionTimeout = 6 * time.Second
		cfg.NackBackoff = 10 * time.Millisecond
		pub, err := kafka.NewPublisher(cfg, logger, nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, pub.Close()) })
		return pub, func(group string) message.Subscriber {
			cfg := cfg
			cfg.ConsumerGroup = group
			sub, err := kafka.NewSubscriber(cfg, logger, nil)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, sub.Close()) })
			return sub
		}
	}},
	{name: "nats", ordered: true, new: func(t *testing.T) (message.Publisher, func(string) message.Subscriber) {
		cfg := natstest.Config(natstest.Start(t))
		pub, err := natsbus.NewPublisher(cfg, logger, nil)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, pub.Close()) })
		return pub, func(group string) message.Subscriber {
			cfg := cfg
			cfg.ConsumerGroup = group
			sub, err := natsbus.NewSubscriber(cfg, logger, nil)
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, sub.Close()) })
			return sub
		}
	}},
}

// failing fails each payload its own way and counts the attempts.
type failing struct {
	mu       sync.Mutex
	attempts map[string]int
}

var errTransient = errors.New("store unavailable")

func (f *failing) handle(msg *message.Message) error {
	p := string(msg.Payload)
	f.mu.Lock()
	f.attempts[p]++
	n := f.attempts[p]
	f.mu.Unlock()
	switch p {
	case "once":
		if n == 1 {
			return errTransient
		}
		return nil
	case "permanent":
		return bus.Permanent(errors.New("decode: bad json"))
	case "panic":
		panic("nil map")
	case "always":
		return errTransient
	}
	return nil
}

func TestRouter(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			pub, newSub := tr.new(t)
			reg := prometheus.NewPedanticRegistry()
			r, err := bus.NewRouter(bus.RouterOptions{
				Config:     bus.RouterConfig{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, CloseTimeout: 5 * time.Second},
				Stage:      "labeler",
				DLQ:        pub,
				Logger:     logger,
				Registerer: reg,
			})
			require.NoError(t, err)
			f := &failing{attempts: map[string]int{}}
			r.AddConsumerHandler("label", contract.TopicMonitor, newSub("labeler"), f.handle)

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			defer func() {
				cancel()
				require.NoError(t, <-done)
			}()
			select {
			case <-r.Running():
			case <-time.After(10 * time.Second):
				t.Fatal("router did not start")
			}

			key := contract.ResourceKey(42)
			for _, p := range []string{"once", "permanent", "panic", "always"} {
				m := message.NewMessage(watermill.NewUUID(), []byte(p))
				bus.SetKey(m, key)
				m.Metadata.Set(contract.HeaderTenant, "acme")
				require.NoError(t, pub.Publish(contract.TopicMonitor, m))
			}

			dlq, err := newSub("dlq-reader").Subscribe(ctx, contract.TopicDLQ)
			require.NoError(t, err)
			// gochannel replays to a new subscriber concurrently with new
			// publishes, so the dead letters may come in any order.
			dead := map[string]*message.Message{}
			for len(dead) < 3 {
				select {
				case m := <-dlq:
					m.Ack()
					dead[string(m.Payload)] = m
				case <-time.After(15 * time.Second):
					t.Fatalf("dead letters: got %d of 3", len(dead))
				}
			}
			for payload, wantErr := range map[string]string{
				"permanent": "decode: bad json",
				"panic":     "handler panic: nil map",
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
				return gathered(t, reg, "tmaflow_bus_handled_messages_total", "dead_lettered") == 3
			}, 5*time.Second, 10*time.Millisecond)
			require.Equal(t, 1.0, gathered(t, reg, "tmaflow_bus_handled_messages_total", "ok"), "the message that failed once was handled")

			f.mu.Lock()
			require.Equal(t, map[string]int{"once": 2, "permanent": 1, "panic": 1, "always": 3}, f.attempts,
				"transient errors are retried twice, permanent ones and panics not at all")
			f.mu.Unlock()
			require.Equal(t, 3.0, gathered(t, reg, "tmaflow_bus_handler_retries_total", ""))
		})
	}
}

// A dead letter that cannot be published is nacked and comes again.
func TestRouterNacksWhenDLQFails(t *testing.T) {
	ps := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NewSlogLogger(logger))
	defer func() { require.NoError(t, ps.Close()) }()
	dlq := &flakyPublisher{Publisher: ps, failures: 1}
	r, err := bus.NewRouter(bus.RouterOptions{
		Config: bus.RouterConfig{MaxRetries: 0, MaxInterval: time.Millisecond, CloseTimeout: time.Second},
		DLQ:    dlq,
		Logger: logger,
	})
	require.NoError(t, err)
	var calls sync.WaitGroup
	calls.Add(2)
	r.AddConsumerHandler("h", "in", ps, func(*message.Message) error {
		calls.Done()
		return bus.Permanent(errors.New("bad"))
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	<-r.Running()
	require.NoError(t, ps.Publish("in", message.NewMessage("1", []byte("x"))))
	dead, err := ps.Subscribe(ctx, contract.TopicDLQ)
	require.NoError(t, err)
	select {
	case m := <-dead:
		m.Ack()
		require.Equal(t, "h", m.Metadata.Get(contract.HeaderStage), "stage falls back to the handler name")
	case <-time.After(10 * time.Second):
		t.Fatal("no dead letter")
	}
	calls.Wait()
}

type flakyPublisher struct {
	message.Publisher
	mu       sync.Mutex
	failures int
}

func (p *flakyPublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failures > 0 {
		p.failures--
		return errors.New("broker down")
	}
	return p.Publisher.Publish(topic, msgs...)
}

// gathered sums the counters of name whose labels include value (any when
// value is empty).
func gathered(t *testing.T, reg prometheus.Gatherer, name, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := value == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetValue() == value
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
