package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
)

// Lag counts what the group has not committed, on every partition — also
// before anything was consumed — and falls as acknowledged records are
// committed.
func TestLag(t *testing.T) {
	ctx := context.Background()
	brokers := newCluster(t)
	cfg := testConfig(brokers)
	cfg.ConsumerGroup = "g"
	cfg.CommitInterval = 0 // commit at every ack: the lag is exact
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	for i := range 10 {
		// Several keys: the records spread over the partitions.
		publishKeyed(t, pub, "lag", fmt.Sprint("k", i), fmt.Sprint(i))
	}

	standalone := cfg
	standalone.ConsumerGroup = ""
	plain, err := kafka.NewSubscriber(standalone, testLogger(t), nil)
	require.NoError(t, err)
	_, err = plain.Lag(ctx, "lag")
	require.ErrorIs(t, err, kafka.ErrNoConsumerGroup)
	require.NoError(t, plain.Close())

	sub, err := kafka.NewSubscriber(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, sub.Close()) }()
	lag, err := sub.Lag(ctx, "lag")
	require.NoError(t, err)
	require.Equal(t, int64(10), lag, "nothing committed: every record")

	latest := cfg
	latest.StartOffset = kafka.StartLatest
	tail, err := kafka.NewSubscriber(latest, testLogger(t), nil)
	require.NoError(t, err)
	lag, err = tail.Lag(ctx, "lag")
	require.NoError(t, err)
	require.Zero(t, lag, "a group starting at the end is behind nothing")
	require.NoError(t, tail.Close())

	msgs, err := sub.Subscribe(ctx, "lag")
	require.NoError(t, err)
	for range 4 {
		receive(t, msgs).Ack()
	}
	require.Eventually(t, func() bool {
		lag, err := sub.Lag(ctx, "lag")
		return err == nil && lag == 6
	}, 10*time.Second, 20*time.Millisecond)
	for range 6 {
		receive(t, msgs).Ack()
	}
	require.Eventually(t, func() bool {
		lag, err := sub.Lag(ctx, "lag")
		return err == nil && lag == 0
	}, 10*time.Second, 20*time.Millisecond)

	_, err = sub.Lag(ctx, "no-such-topic")
	require.Error(t, err)
}
