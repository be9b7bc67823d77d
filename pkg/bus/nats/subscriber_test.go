package nats_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/bus/nats/natstest"
)

func publish(t *testing.T, pub message.Publisher, topic, key string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		m := message.NewMessage("", []byte(p))
		bus.SetKey(m, []byte(key))
		require.NoError(t, pub.Publish(topic, m))
	}
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		require.NotNil(t, m, "channel closed")
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

func subscriber(t *testing.T, cfg nats.Config, group string) *nats.Subscriber {
	t.Helper()
	cfg.ConsumerGroup = group
	sub, err := nats.NewSubscriber(cfg, testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sub.Close()) })
	return sub
}

func publisher(t testing.TB, cfg nats.Config) *nats.Publisher {
	t.Helper()
	pub, err := nats.NewPublisher(cfg, testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pub.Close()) })
	return pub
}

// streamMsgs counts the messages stored in topic's stream.
// (url may carry credentials: nats://user:pass@host:port).
func streamMsgs(t *testing.T, url, topic string) uint64 {
	t.Helper()
	nc, err := natsgo.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "TMAFLOW_"+strings.ToUpper(strings.ReplaceAll(topic, "-", "_")))
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	return info.State.Msgs
}

// A publish retried with the same message is stored once: the stream
// deduplicates by Nats-Msg-Id.
func TestRetriedPublishStoredOnce(t *testing.T) {
	url := natstest.Start(t)
	pub := publisher(t, natstest.Config(url))
	m := message.NewMessage("", []byte("x"))
	bus.SetKey(m, []byte("k"))
	require.NoError(t, pub.Publish("dedup", m))
	require.NoError(t, pub.Publish("dedup", m), "the duplicate is acknowledged too")
	other := message.NewMessage("", []byte("y"))
	bus.SetKey(other, []byte("k"))
	require.NoError(t, pub.Publish("dedup", other))
	require.Equal(t, uint64(2), streamMsgs(t, url, "dedup"))
}

func TestPublishTooLarge(t *testing.T) {
	pub := publisher(t, natstest.Config(natstest.Start(t)))
	err := pub.Publish("big", message.NewMessage("", make([]byte, 2<<20)))
	require.ErrorIs(t, err, bus.ErrTooLarge)
}

func TestPublishRefusesUnusableMetadata(t *testing.T) {
	pub := publisher(t, natstest.Config(natstest.Start(t)))
	m := message.NewMessage("", []byte("x"))
	m.Metadata.Set("bad name", "v")
	require.ErrorIs(t, pub.Publish("t", m), nats.ErrHeaderName)
}

// A Nack delivers the same message again before anything behind it, with
// one message in flight; every message carries its position.
func TestNackRedeliversInOrder(t *testing.T) {
	cfg := natstest.Config(natstest.Start(t))
	cfg.MaxInFlight = 1
	pub := publisher(t, cfg)
	publish(t, pub, "nack", "k", "a", "b", "c")
	ch, err := subscriber(t, cfg, "g").Subscribe(t.Context(), "nack")
	require.NoError(t, err)
	var got []string
	for i := 0; len(got) < 4; i++ {
		m := receive(t, ch)
		got = append(got, string(m.Payload))
		pos, ok := bus.PositionFromContext(m.Context())
		require.True(t, ok)
		require.Equal(t, "nack", pos.Topic)
		if i == 0 {
			require.Equal(t, int64(2), pos.HighWaterMark-pos.Offset-1, "two messages behind the first")
			m.Nack()
			continue
		}
		m.Ack()
	}
	require.Equal(t, []string{"a", "a", "b", "c"}, got)
}

// At shutdown what was handed out and not acknowledged goes back to the
// group at once (not after the ack wait), and the next subscriber gets it
// first.
func TestCloseGivesBack(t *testing.T) {
	cfg := natstest.Config(natstest.Start(t))
	cfg.AckWait = time.Minute
	pub := publisher(t, cfg)
	publish(t, pub, "back", "k", "a", "b", "c")
	first := subscriber(t, cfg, "g")
	ch, err := first.Subscribe(t.Context(), "back")
	require.NoError(t, err)
	a := receive(t, ch)
	a.Ack()
	require.Equal(t, "a", string(a.Payload))
	require.Equal(t, "b", string(receive(t, ch).Payload)) // not acknowledged
	require.NoError(t, first.Close())

	start := time.Now()
	ch, err = subscriber(t, cfg, "g").Subscribe(t.Context(), "back")
	require.NoError(t, err)
	var got []string
	for len(got) < 2 {
		m := receive(t, ch)
		got = append(got, string(m.Payload))
		m.Ack()
	}
	require.Equal(t, []string{"b", "c"}, got)
	require.Less(t, time.Since(start), 10*time.Second)
}

// Two subscribers of a group: a partition is pinned to one of them, so
// its messages keep their order; when that one leaves, the other goes on.
func TestPartitionPinnedToOneSubscriber(t *testing.T) {
	cfg := natstest.Config(natstest.Start(t))
	cfg.Partitions = 1
	pub := publisher(t, cfg)
	subs := []*nats.Subscriber{subscriber(t, cfg, "g"), subscriber(t, cfg, "g")}
	var (
		mu  sync.Mutex
		got = map[int][]string{}
	)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for i, s := range subs {
		ch, err := s.Subscribe(ctx, "pinned")
		require.NoError(t, err)
		go func() {
			for m := range ch {
				mu.Lock()
				got[i] = append(got[i], string(m.Payload))
				mu.Unlock()
				m.Ack()
			}
		}()
	}
	var want []string
	for i := range 50 {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	publish(t, pub, "pinned", "k", want[:25]...)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got[0]) + len(got[1])
	}
	require.Eventually(t, func() bool { return count() == 25 }, 10*time.Second, 10*time.Millisecond)
	mu.Lock()
	owner := 0
	if len(got[1]) > 0 {
		owner = 1
	}
	require.Equal(t, want[:25], got[owner], "one subscriber has the partition, in order")
	require.Empty(t, got[1-owner])
	mu.Unlock()

	require.NoError(t, subs[owner].Close())
	publish(t, pub, "pinned", "k", want[25:]...)
	require.Eventually(t, func() bool { return count() == 50 }, 15*time.Second, 10*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, want[25:], got[1-owner], "the other takes over where it stopped")
}

func TestLag(t *testing.T) {
	cfg := natstest.Config(natstest.Start(t))
	pub := publisher(t, cfg)
	var payloads []string
	for i := range 10 {
		payloads = append(payloads, fmt.Sprint(i))
	}
	publish(t, pub, "lag", "k", payloads...)
	sub := subscriber(t, cfg, "g")
	lag := sub.LagOf("lag")
	n, err := lag(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(10), n, "a group that never consumed is behind every message")

	ch, err := sub.Subscribe(t.Context(), "lag")
	require.NoError(t, err)
	for range 10 {
		receive(t, ch).Ack()
	}
	require.Eventually(t, func() bool {
		n, err := lag(t.Context())
		return err == nil && n == 0
	}, 10*time.Second, 20*time.Millisecond)

	_, err = subscriber(t, cfg, "").LagOf("lag")(t.Context())
	require.ErrorIs(t, err, nats.ErrNoConsumerGroup)
}

// The reader reads every partition from the start, tells when it caught
// up with what was there, then follows.
func TestReader(t *testing.T) {
	cfg := natstest.Config(natstest.Start(t))
	pub := publisher(t, cfg)
	for i := range 20 {
		m := message.NewMessage("", []byte(fmt.Sprint(i)))
		bus.SetKey(m, []byte{0, 0, 0, byte(i)})
		m.Metadata.Set("tenant", "acme")
		require.NoError(t, pub.Publish("read", m))
	}
	r, err := nats.NewReader(cfg, testLogger())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	var (
		mu     sync.Mutex
		recs   []bus.Record
		caught = make(chan int, 1)
		done   = make(chan error, 1)
	)
	go func() {
		done <- r.Consume(ctx, "read", time.Time{}, func(rec bus.Record) {
			mu.Lock()
			recs = append(recs, rec)
			mu.Unlock()
		}, func() {
			mu.Lock()
			caught <- len(recs)
			mu.Unlock()
		})
	}()
	select {
	case n := <-caught:
		require.Equal(t, 20, n, "caught up after every message that was there")
	case <-time.After(10 * time.Second):
		t.Fatal("not caught up")
	}
	publish(t, pub, "read", "late", "late")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(recs) == 21
	}, 10*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	last := map[int]int64{}
	for _, rec := range recs[:20] {
		require.Equal(t, map[string]string{"tenant": "acme"}, rec.Headers)
		require.Len(t, rec.Key, 4)
		require.Greater(t, rec.Offset, last[rec.Partition], "in order within a partition")
		last[rec.Partition] = rec.Offset
	}
	require.Equal(t, []byte("late"), recs[20].Key)
}

// Acknowledged messages survive a restart of the server, and a
// subscriber goes on after it.
func TestServerRestart(t *testing.T) {
	dir := t.TempDir()
	scfg := nats.ServerConfig{ListenAddress: "127.0.0.1:0", StoreDir: dir, SyncInterval: nats.SyncAlways, MaxStore: -1}
	srv, err := nats.StartServer(scfg, nil)
	require.NoError(t, err)
	url := srv.URL()
	cfg := natstest.Config(url)
	pub := publisher(t, cfg)
	publish(t, pub, "restart", "k", "a", "b")
	ch, err := subscriber(t, cfg, "g").Subscribe(t.Context(), "restart")
	require.NoError(t, err)
	receive(t, ch).Ack()

	srv.Close()
	scfg.ListenAddress = strings.TrimPrefix(url, "nats://")
	srv, err = nats.StartServer(scfg, nil)
	require.NoError(t, err)
	defer srv.Close()
	require.Eventually(t, func() bool { return pub.Ping(t.Context()) == nil }, 10*time.Second, 50*time.Millisecond)
	publish(t, pub, "restart", "k", "c")
	var got []string
	for len(got) < 2 {
		m := receive(t, ch)
		got = append(got, string(m.Payload))
		m.Ack()
	}
	require.Equal(t, []string{"b", "c"}, got)
}
