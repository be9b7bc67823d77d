package kafka_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// The publisher and subscriber reconnect by themselves when the broker
// comes back on the same address.
func TestBrokerRestart(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	start := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
		require.NoError(t, err)
		return c
	}
	c := start()
	cfg := testConfig([]string{"127.0.0.1:" + strconv.Itoa(port)})
	cfg.ConsumerGroup = "g"
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	sub, msgs := subscribe(t, cfg, nil, "restart")
	defer func() { require.NoError(t, sub.Close()) }()

	publishKeyed(t, pub, "restart", "k", "before")
	m := receive(t, msgs)
	require.Equal(t, "before", string(m.Payload))
	m.Ack()

	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	require.Error(t, pub.Ping(ctx))
	cancel()

	c = start()
	defer c.Close()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return pub.Ping(ctx) == nil
	}, 10*time.Second, 50*time.Millisecond, "ping after restart")
	// A publish may still meet a stale connection; callers retry.
	require.Eventually(t, func() bool {
		m := message.NewMessage("after", []byte("after"))
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		m.SetContext(ctx)
		return pub.Publish("restart", m) == nil
	}, 10*time.Second, 50*time.Millisecond, "publish after restart")

	for {
		m := receive(t, msgs)
		m.Ack()
		if string(m.Payload) == "after" {
			break
		}
	}
}
