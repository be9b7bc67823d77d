package benchkit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	natsbus "github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/bus/nats/natstest"
)

func TestParseBuses(t *testing.T) {
	for in, want := range map[string][]string{
		"kafka":       {BusKafka},
		"nats":        {BusNATS},
		"both":        {BusKafka, BusNATS},
		"nats, kafka": {BusKafka, BusNATS},
		"nats,both":   {BusKafka, BusNATS},
	} {
		got, err := ParseBuses(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := ParseBuses("kafka,pulsar")
	require.ErrorContains(t, err, `bus "pulsar"`)
	_, err = ParseBuses(" ")
	require.ErrorContains(t, err, "none given")
}

func TestBusFlags(t *testing.T) {
	k := Bus{Kind: BusKafka, Addr: "127.0.0.1:9092"}
	require.Equal(t, []string{"-broker.listen-address=127.0.0.1:9092"}, k.Args())
	require.Equal(t, []string{"-kafka.brokers=127.0.0.1:9092"}, k.ClientArgs())
	n := Bus{Kind: BusNATS, Addr: "127.0.0.1:4222"}
	require.Equal(t, []string{"-bus=nats", "-nats.listen-address=127.0.0.1:4222"}, n.Args())
	require.Equal(t, []string{"-bus=nats", "-nats.url=nats://127.0.0.1:4222"}, n.ClientArgs())

	require.Contains(t, k.Durability(nil), "no fsync")
	require.Contains(t, k.Durability([]string{"--broker.sync-writes"}), "fsync of every produced batch")
	require.Contains(t, k.Durability([]string{"-broker.sync-writes=false"}), "no fsync")
	require.Contains(t, n.Durability([]string{"-broker.sync-writes"}), "fsync before every acknowledgement")
	require.Contains(t, n.Durability([]string{"-nats.sync-interval=2m"}), "fsync every 2m")
}

// TestNATSLag reads a group's lag from a NATS server: every message before
// the group consumes, none once it acknowledged them all.
func TestNATSLag(t *testing.T) {
	url := natstest.Start(t)
	cfg := natstest.Config(url)
	pub, err := natsbus.NewPublisher(cfg, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	for i := range 10 {
		m := message.NewMessage(fmt.Sprint(i), []byte("x"))
		bus.SetKey(m, []byte{byte(i)})
		require.NoError(t, pub.Publish("topic-monitor", m))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := NewNATSLagReader(url)
	defer func() { require.NoError(t, l.Close()) }()
	c := Consumer{Name: "labeler", Group: "g", Topic: "topic-monitor"}
	lags, err := l.Lags(ctx, []Consumer{c, {Name: "persister", Group: "h", Topic: "topic-metrics"}})
	require.NoError(t, err)
	require.Equal(t, []int64{10, 0}, lags, "a group that has not started lags by every message")

	_, err = Drain(ctx, l, []Consumer{c}, 300*time.Millisecond)
	require.ErrorContains(t, err, "consumers still 10 records behind")

	cfg.ConsumerGroup = "g"
	sub, err := natsbus.NewSubscriber(cfg, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, sub.Close()) }()
	ch, err := sub.Subscribe(ctx, "topic-monitor")
	require.NoError(t, err)
	for range 10 {
		(<-ch).Ack()
	}
	first, err := Drain(ctx, l, []Consumer{c}, 30*time.Second)
	require.NoError(t, err)
	require.LessOrEqual(t, first, int64(10))
	n, err := l.Lag(ctx, c)
	require.NoError(t, err)
	require.Zero(t, n)
}
