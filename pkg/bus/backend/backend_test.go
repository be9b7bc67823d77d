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

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name         string
		embeddable   bool
		args         []string
		wantErr      string
		wantEmbedded bool
	}{
		{name: "kafka by default", args: []string{"-kafka.brokers=k:9092"}},
		{name: "unknown bus", args: []string{"-bus=nats", "-kafka.brokers=k:9092"}, wantErr: `bus "nats": want one of kafka`},
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

// TestEmbeddedRoundTrip opens the embedded broker and sends a record
// through the bus's publisher and a subscriber of it.
func TestEmbeddedRoundTrip(t *testing.T) {
	c := parse(t, true, "-broker.listen-address=127.0.0.1:0", "-kafka.fetch-max-wait=100ms")
	reg := prometheus.NewRegistry()
	b, err := Open(c, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	defer func() { require.NoError(t, b.Close()) }()
	require.NotNil(t, b.Broker())
	require.Equal(t, b.Broker().Addrs(), b.Brokers())
	go func() { _ = b.Broker().Execute() }()
	defer b.Broker().Interrupt(nil)

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
