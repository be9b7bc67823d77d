package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
)

// With a window, several records of a partition are out at once, in
// order; an offset is committed only when every record before it was
// acknowledged, whatever order the acks come in.
func TestWindowCommitsBelowFirstUnacked(t *testing.T) {
	ctx := context.Background()
	brokers := newCluster(t)
	cfg := testConfig(brokers)
	cfg.ConsumerGroup = "g"
	cfg.MaxInFlight = 4
	cfg.CommitInterval = 0
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	publishKeyed(t, pub, "window", "k", "0", "1", "2", "3", "4", "5")

	sub, msgs := subscribe(t, cfg, nil, "window")
	defer func() { require.NoError(t, sub.Close()) }()
	var out []*message.Message
	for range 4 {
		out = append(out, receive(t, msgs))
	}
	for i, m := range out {
		require.Equal(t, fmt.Sprint(i), string(m.Payload), "in order")
	}
	select {
	case m := <-msgs:
		t.Fatalf("a fifth record %s beyond the window", m.Payload)
	case <-time.After(100 * time.Millisecond):
	}
	lag := func() int64 {
		l, err := sub.Lag(ctx, "window")
		require.NoError(t, err)
		return l
	}
	out[1].Ack()
	out[2].Ack()
	require.Equal(t, "4", string(receive(t, msgs).Payload), "acks free slots")
	require.Never(t, func() bool { return lag() < 6 }, 300*time.Millisecond, 20*time.Millisecond, "record 0 unacknowledged: nothing committed")
	out[0].Ack()
	require.Eventually(t, func() bool { return lag() == 3 }, 5*time.Second, 10*time.Millisecond, "0..2 committed, 3 holds the rest")
}

// Handlers of a window's records run concurrently but pass their turns in
// record order, and a handler that never takes its turn holds nobody up.
func TestWindowTurns(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers)
	cfg.ConsumerGroup = "g"
	cfg.MaxInFlight = 8
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	var payloads []string
	for i := range 40 {
		payloads = append(payloads, fmt.Sprint(i))
	}
	publishKeyed(t, pub, "turns", "k", payloads...)

	sub, msgs := subscribe(t, cfg, nil, "turns")
	defer func() { require.NoError(t, sub.Close()) }()
	var (
		mu    sync.Mutex
		order []string
		wg    sync.WaitGroup
	)
	for i := range 40 {
		m := receive(t, msgs)
		wg.Go(func() {
			if i%5 == 3 {
				m.Ack() // no turn taken
				return
			}
			// Later records reach their turn first.
			time.Sleep(time.Duration(40-i) * 100 * time.Microsecond)
			release := bus.AwaitTurn(m.Context())
			mu.Lock()
			order = append(order, string(m.Payload))
			mu.Unlock()
			release()
			m.Ack()
		})
	}
	wg.Wait()
	var want []string
	for i := range 40 {
		if i%5 != 3 {
			want = append(want, fmt.Sprint(i))
		}
	}
	require.Equal(t, want, order)
}
