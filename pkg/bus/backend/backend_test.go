package backend

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

func parse(t *testing.T, embeddable bool, args ...string) Config {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c Config
	if embeddable {
		c.RegisterEmbeddedFlags(fs)
	}
	c.RegisterFlags(fs)
	require.NoError(t, service.Parse(fs, args))
	return c
}

func TestConsumerGroupOfTheChosenBus(t *testing.T) {
	c := parse(t, false, "-kafka.brokers=k:9092", "-kafka.consumer-group=kg")
	require.Equal(t, "kg", c.ConsumerGroup())
	require.Equal(t, "kafka.consumer-group", c.ConsumerGroupFlag())
	c = parse(t, false, "-bus=nats", "-nats.url=nats://n:4222", "-nats.consumer-group=ng")
	require.Equal(t, "ng", c.ConsumerGroup())
	require.Equal(t, "nats.consumer-group", c.ConsumerGroupFlag())
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name         string
		embeddable   bool
		args         []string
		wantErr      string
		wantEmbedded bool
	}{
		{name: "kafka by default", args: []string{"-kafka.brokers=k:9092"}},
		{name: "unknown bus", args: []string{"-bus=pulsar", "-kafka.brokers=k:9092"}, wantErr: `bus "pulsar": want one of kafka, nats`},
		{name: "nats by url", args: []string{"-bus=nats", "-nats.url=nats://n:4222"}},
		{name: "a service's binary needs a nats url", args: []string{"-bus=nats"}, wantErr: "nats.url: a NATS server URL is required"},
		{name: "the all-in-one embeds nats", embeddable: true, args: []string{"-bus=nats"}, wantEmbedded: true},
		{name: "embedded nats config checked", embeddable: true, args: []string{"-bus=nats", "-nats.sync-interval=sometimes"}, wantErr: "nats.sync-interval", wantEmbedded: true},
		{name: "and ignored with an external server", embeddable: true, args: []string{"-bus=nats", "-nats.sync-interval=sometimes", "-nats.url=nats://n:4222"}},
		{name: "nats client config checked", args: []string{"-bus=nats", "-nats.url=nats://n:4222", "-nats.user=u", "-nats.token=t"}, wantErr: "at most one of"},
		{name: "kafka brokers do not embed nats", embeddable: true, args: []string{"-bus=nats", "-kafka.brokers=k:9092"}, wantEmbedded: true},
		{name: "the kafka group flag is not for nats", args: []string{"-bus=nats", "-nats.url=nats://n:4222", "-kafka.consumer-group=g"}, wantErr: "kafka.consumer-group is not used with -bus=nats: set nats.consumer-group"},
		{name: "the nats group flag is not for kafka", args: []string{"-kafka.brokers=k:9092", "-nats.consumer-group=g"}, wantErr: "nats.consumer-group is not used with -bus=kafka: set kafka.consumer-group"},
		{name: "a service's binary needs brokers", wantErr: "kafka.brokers: at least one broker is required"},
		{name: "the all-in-one embeds one", embeddable: true, wantEmbedded: true},
		{name: "embedded broker config checked", embeddable: true, args: []string{"-broker.partitions=0"}, wantErr: "broker.partitions", wantEmbedded: true},
		{name: "and ignored with external brokers", embeddable: true, args: []string{"-broker.partitions=0", "-kafka.brokers=k:9092"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parse(t, tc.embeddable, tc.args...)
			require.Equal(t, tc.wantEmbedded, c.Embedded())
			err := c.Validate()
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
		})
	}
}

// TestEmbeddedRoundTrip opens the embedded broker of each kind and sends
// a record through the bus's publisher, a subscriber and a reader of it.
func TestEmbeddedRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kind string
		args []string
	}{
		{kind: KindKafka, args: []string{"-broker.listen-address=127.0.0.1:0", "-kafka.fetch-max-wait=100ms"}},
		{kind: KindNATS, args: []string{"-bus=nats", "-nats.listen-address=127.0.0.1:0", "-nats.store-dir=" + t.TempDir()}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			roundTrip(t, parse(t, true, tc.args...))
		})
	}
}

func roundTrip(t *testing.T, c Config) {
	reg := prometheus.NewRegistry()
	b, err := Open(c, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	require.Equal(t, c.Kind, b.Kind())
	require.True(t, b.Embedded(), "the process runs the bus")
	if c.Kind == KindKafka {
		require.NotNil(t, b.Broker())
		require.Equal(t, b.Broker().Addrs(), b.Brokers())
		go func() { _ = b.Broker().Execute() }()
		defer b.Broker().Interrupt(nil)
	} else {
		require.Nil(t, b.Broker())
		require.Len(t, b.Brokers(), 1)
		require.Contains(t, b.Brokers()[0], "nats://127.0.0.1:")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, b.Ping(ctx))
	msg := message.NewMessage("id-1", []byte("payload"))
	bus.SetKey(msg, []byte("k"))
	require.NoError(t, b.Publisher().Publish(contract.TopicDLQ, msg))

	sub, err := b.Subscriber("g", slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	defer func() { require.NoError(t, sub.Close()) }()
	ch, err := sub.Subscribe(ctx, contract.TopicDLQ)
	require.NoError(t, err)
	select {
	case got := <-ch:
		require.Equal(t, "payload", string(got.Payload))
		require.Equal(t, []byte("k"), bus.Key(got))
		pos, ok := bus.PositionFromContext(got.Context())
		require.True(t, ok, "the adapter tells where the record stood")
		require.Equal(t, contract.TopicDLQ, pos.Topic)
		got.Ack()
	case <-ctx.Done():
		t.Fatal("no message")
	}
	require.Eventually(t, func() bool {
		lag, err := sub.LagOf(contract.TopicDLQ)(ctx)
		return err == nil && lag == 0
	}, 10*time.Second, 50*time.Millisecond, "the acknowledged record is no lag")

	r, err := b.Reader(slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	read := make(chan bus.Record, 1)
	go func() {
		_ = r.Consume(rctx, contract.TopicDLQ, time.Time{}, func(rec bus.Record) { read <- rec }, func() {})
	}()
	select {
	case rec := <-read:
		require.Equal(t, "payload", string(rec.Value))
	case <-ctx.Done():
		t.Fatal("the reader read nothing")
	}
}
