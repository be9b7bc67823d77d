package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
)

// publishKeyed publishes one message per payload, all with key, so they
// share a partition and its order.
func publishKeyed(t *testing.T, pub message.Publisher, topic, key string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		m := message.NewMessage(p, []byte(p))
		bus.SetKey(m, []byte(key))
		require.NoError(t, pub.Publish(topic, m))
	}
}

func subscribe(t *testing.T, cfg kafka.Config, reg prometheus.Registerer, topic string) (*kafka.Subscriber, <-chan *message.Message) {
	t.Helper()
	sub, err := kafka.NewSubscriber(cfg, testLogger(t), reg)
	require.NoError(t, err)
	msgs, err := sub.Subscribe(context.Background(), topic)
	require.NoError(t, err)
	return sub, msgs
}

func TestNackRedeliversBeforeLaterRecords(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers)
	cfg.ConsumerGroup = "g"
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	publishKeyed(t, pub, "nack", "k", "a", "b", "c")

	reg := prometheus.NewPedanticRegistry()
	sub, msgs := subscribe(t, cfg, reg, "nack")
	defer func() { require.NoError(t, sub.Close()) }()

	var got []string
	for _, nack := range []bool{true, true, false, false, true, false} {
		m := receive(t, msgs)
		got = append(got, string(m.Payload))
		if nack {
			m.Nack()
			select {
			case <-m.Context().Done():
			case <-time.After(time.Second):
				t.Fatal("context not canceled after nack")
			}
			continue
		}
		m.Ack()
	}
	require.Equal(t, []string{"a", "a", "a", "b", "c", "c"}, got)
	require.Equal(t, 3.0, gathered(t, reg, "tmaflow_kafka_nacked_records_total"))
	require.Eventually(t, func() bool { return gathered(t, reg, "tmaflow_kafka_consumed_records_total") == 3 }, time.Second, 10*time.Millisecond)
}

// A member that leaves with a record unacknowledged leaves it to the next
// member: offsets cover acknowledged records only.
func TestOffsetsCommittedOnlyAfterAck(t *testing.T) {
	for _, interval := range []time.Duration{0, 50 * time.Millisecond, time.Hour} {
		t.Run(interval.String(), func(t *testing.T) {
			brokers := newCluster(t)
			cfg := testConfig(brokers)
			cfg.ConsumerGroup = "g"
			cfg.CommitInterval = interval
			pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
			require.NoError(t, err)
			defer func() { require.NoError(t, pub.Close()) }()
			publishKeyed(t, pub, "commit", "k", "a", "b", "c")

			sub, msgs := subscribe(t, cfg, nil, "commit")
			m := receive(t, msgs)
			require.Equal(t, "a", string(m.Payload))
			m.Ack()
			m = receive(t, msgs)
			require.Equal(t, "b", string(m.Payload))
			if interval < time.Second {
				time.Sleep(2 * interval) // let a periodic commit run; the hour relies on the commit at close
			}
			require.NoError(t, sub.Close())

			sub, msgs = subscribe(t, cfg, nil, "commit")
			defer func() { require.NoError(t, sub.Close()) }()
			for _, want := range []string{"b", "c"} {
				m := receive(t, msgs)
				require.Equal(t, want, string(m.Payload))
				m.Ack()
			}
		})
	}
}

// Partitions are independent: an unacknowledged record holds back its own
// partition only.
func TestPartitionsDeliveredConcurrently(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers)
	cfg.ConsumerGroup = "g"
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	// "21" and "foobar" hash to partitions 4 and 6 of 8.
	publishKeyed(t, pub, "conc", "21", "p4-a", "p4-b")
	publishKeyed(t, pub, "conc", "foobar", "p6-a", "p6-b")

	reg := prometheus.NewPedanticRegistry()
	sub, msgs := subscribe(t, cfg, reg, "conc")
	defer func() { require.NoError(t, sub.Close()) }()

	first, second := receive(t, msgs), receive(t, msgs)
	require.NotEqual(t, string(first.Payload)[:2], string(second.Payload)[:2], "second record must come from the other partition")
	select {
	case m := <-msgs:
		t.Fatalf("%s delivered before its predecessor was acknowledged", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	first.Ack()
	third := receive(t, msgs)
	require.Equal(t, string(first.Payload)[:3]+"b", string(third.Payload))
	rec, _ := kafka.RecordFromContext(third.Context())
	require.Equal(t, int64(2), rec.HighWaterMark)
	// After the first, its partition was one record behind.
	require.Eventually(t, func() bool { return gathered(t, reg, "tmaflow_kafka_consumer_lag_records") == 1 }, time.Second, 10*time.Millisecond)
	third.Ack()
	require.Eventually(t, func() bool { return gathered(t, reg, "tmaflow_kafka_consumer_lag_records") == 0 }, time.Second, 10*time.Millisecond)
	second.Ack()
	require.Eventually(t, func() bool { return gathered(t, reg, "tmaflow_kafka_consumer_lag_records") == 1 }, time.Second, 10*time.Millisecond)
}

// A group member reads partitions led by different brokers.
func TestSubscribeAcrossLeaders(t *testing.T) {
	brokers := newCluster(t, kfake.NumBrokers(3))
	cfg := testConfig(brokers)
	cfg.ConsumerGroup = "g"
	cfg.MaxInFlight = 16
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	want := map[string]bool{}
	for i := range 40 {
		p := fmt.Sprintf("m%d", i)
		publishKeyed(t, pub, "spread", p, p)
		want[p] = true
	}
	sub, msgs := subscribe(t, cfg, nil, "spread")
	defer func() { require.NoError(t, sub.Close()) }()
	got := map[string]bool{}
	partitions := map[int]bool{}
	for range want {
		m := receive(t, msgs)
		got[string(m.Payload)] = true
		rec, _ := kafka.RecordFromContext(m.Context())
		partitions[rec.Partition] = true
		m.Ack()
	}
	require.Equal(t, want, got)
	require.Len(t, partitions, 8, "40 keys cover the 8 partitions")
}
