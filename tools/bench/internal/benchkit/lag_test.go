package benchkit

import (
	"context"
	"log/slog"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker"
)

// TestLag reads the lag of a group from the embedded broker: all records
// before a commit, what is past the committed offset after.
func TestLag(t *testing.T) {
	addr := startBroker(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "topic-monitor", Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	msgs := make([]kafka.Message, 10)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte{byte(i)}, Value: []byte("x")}
	}
	require.NoError(t, w.WriteMessages(ctx, msgs...))
	require.NoError(t, w.Close())

	c := Consumer{Name: "labeler", Group: "g", Topic: "topic-monitor"}
	l := NewLagReader(addr)
	n, err := l.Lag(ctx, c)
	require.NoError(t, err)
	require.Equal(t, int64(10), n)

	// Commit partition 0 to its end: what is left is partition 1's.
	ends, err := l.Client().ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.Topic: {kafka.LastOffsetOf(0)}}})
	require.NoError(t, err)
	end0 := ends.Topics[c.Topic][0].LastOffset
	res, err := l.Client().OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: c.Group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{c.Topic: {{Partition: 0, Offset: end0}}},
	})
	require.NoError(t, err)
	for _, ps := range res.Topics {
		for _, p := range ps {
			require.NoError(t, p.Error)
		}
	}
	n, err = l.Lag(ctx, c)
	require.NoError(t, err)
	require.Equal(t, 10-end0, n)

	lags, err := l.Lags(ctx, []Consumer{c, {Name: "none", Group: "g", Topic: "topic-metrics"}})
	require.NoError(t, err)
	require.Equal(t, []int64{10 - end0, 0}, lags)
}

// TestDrain waits for a group to commit what was produced.
func TestDrain(t *testing.T) {
	addr := startBroker(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "topic-monitor", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	require.NoError(t, w.WriteMessages(ctx, kafka.Message{Value: []byte("a")}, kafka.Message{Value: []byte("b")}))
	require.NoError(t, w.Close())
	l := NewLagReader(addr)
	c := Consumer{Name: "labeler", Group: "g", Topic: "topic-monitor"}

	first, err := Drain(ctx, l, []Consumer{c}, 300*time.Millisecond)
	require.ErrorContains(t, err, "consumers still 2 records behind")
	require.Equal(t, int64(2), first)

	res, err := l.Client().OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: c.Group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{c.Topic: {{Partition: 0, Offset: 2}}},
	})
	require.NoError(t, err)
	require.NoError(t, res.Topics[c.Topic][0].Error)
	first, err = Drain(ctx, l, []Consumer{c}, time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(0), first)
}

// startBroker starts an embedded broker with partitions per topic and
// returns its address.
func startBroker(t *testing.T, partitions int) string {
	t.Helper()
	b, err := broker.Start(broker.Config{
		ListenAddress: "127.0.0.1:0", DataDir: t.TempDir(), Retention: time.Hour,
		RetentionBytes: -1, RetentionCheckInterval: time.Hour, Partitions: partitions,
	}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b.Addrs()[0]
}
