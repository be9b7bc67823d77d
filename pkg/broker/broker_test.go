package broker

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

func testConfig(dir string) Config {
	return Config{
		ListenAddress:          "127.0.0.1:0",
		DataDir:                dir,
		Retention:              time.Hour,
		RetentionBytes:         -1,
		RetentionCheckInterval: time.Hour,
		Partitions:             3,
	}
}

func start(t *testing.T, cfg Config) *Broker {
	t.Helper()
	b, err := Start(cfg, nil)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b
}

func produce(t *testing.T, addr, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		Balancer:     &kafka.Hash{},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, w.WriteMessages(ctx, msgs...))
	require.NoError(t, w.Close())
}

func readAll(t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msgs, err := brokertest.ReadAll(ctx, addr, topic)
	require.NoError(t, err)
	return msgs
}

func records(n int, ts time.Time) []kafka.Message {
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:     contract.ResourceKey(int64(i)),
			Value:   fmt.Appendf(nil, `{"n":%d}`, i),
			Headers: []kafka.Header{{Key: contract.HeaderTenant, Value: []byte("t1")}},
			Time:    ts,
		}
	}
	return msgs
}

func byValue(msgs []kafka.Message) map[string]kafka.Message {
	m := make(map[string]kafka.Message, len(msgs))
	for _, msg := range msgs {
		m[string(msg.Value)] = msg
	}
	return m
}

// The restart test: records acknowledged before Close are read back
// from a broker started on the same data dir.
func TestRestartKeepsRecords(t *testing.T) {
	dir := t.TempDir()
	b := start(t, testConfig(dir))
	want := records(50, time.Now())
	produce(t, b.Addrs()[0], contract.TopicMonitor, want...)
	b.Close()

	b2 := start(t, testConfig(dir))
	got := byValue(readAll(t, b2.Addrs()[0], contract.TopicMonitor))
	require.Len(t, got, len(want))
	for _, w := range want {
		g, ok := got[string(w.Value)]
		require.True(t, ok, "record %s lost", w.Value)
		require.Equal(t, w.Key, g.Key)
		require.Equal(t, w.Headers, g.Headers)
	}

	// Appends continue after the restored offsets.
	produce(t, b2.Addrs()[0], contract.TopicMonitor, records(1, time.Now())...)
	require.Len(t, readAll(t, b2.Addrs()[0], contract.TopicMonitor), len(want)+1)
}

func TestContractTopicsSeededAndRestored(t *testing.T) {
	dir := t.TempDir()
	b := start(t, testConfig(dir))
	addr := b.Addrs()[0]
	requirePartitions(t, addr, Topics(), 3)

	conn, err := kafka.Dial("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, conn.DeleteTopics(contract.TopicDLQ))
	require.NoError(t, conn.Close())
	b.Close()

	// A data dir missing a contract topic gets it back on start.
	b2 := start(t, testConfig(dir))
	requirePartitions(t, b2.Addrs()[0], Topics(), 3)
}

func requirePartitions(t *testing.T, addr string, topics []string, n int) {
	t.Helper()
	conn, err := kafka.Dial("tcp", addr)
	require.NoError(t, err)
	defer func() { require.NoError(t, conn.Close()) }()
	for _, topic := range topics {
		parts, err := conn.ReadPartitions(topic)
		require.NoError(t, err, topic)
		require.Len(t, parts, n, topic)
	}
}

func TestRetention(t *testing.T) {
	old := time.Now().Add(-2 * time.Hour)
	for _, tc := range []struct {
		name      string
		retention time.Duration
		bytes     int64
		old, new  int
		wantLeft  int
	}{
		{name: "time drops records older than retention", retention: time.Hour, bytes: -1, old: 5, new: 3, wantLeft: 3},
		{name: "time keeps records within retention", retention: 3 * time.Hour, bytes: -1, old: 5, new: 3, wantLeft: 8},
		// One partition, one batch of about 170 bytes per produce call: a
		// limit between one and two batches drops the oldest batch only.
		{name: "bytes drops the oldest batch", retention: 3 * time.Hour, bytes: 250, old: 3, new: 3, wantLeft: 3},
		{name: "bytes keeps both batches under the limit", retention: 3 * time.Hour, bytes: 1000, old: 3, new: 3, wantLeft: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			cfg.Partitions = 1
			cfg.Retention = tc.retention
			cfg.RetentionBytes = tc.bytes
			b := start(t, cfg)
			addr := b.Addrs()[0]
			produce(t, addr, contract.TopicMonitor, records(tc.old, old)...)
			produce(t, addr, contract.TopicMonitor, records(tc.new, time.Now())...)
			b.ApplyRetention()
			require.Len(t, readAll(t, addr, contract.TopicMonitor), tc.wantLeft)
		})
	}
}

func TestRetentionSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Partitions = 1
	b := start(t, cfg)
	produce(t, b.Addrs()[0], contract.TopicMonitor, records(4, time.Now().Add(-2*time.Hour))...)
	produce(t, b.Addrs()[0], contract.TopicMonitor, records(2, time.Now())...)
	b.ApplyRetention()
	b.Close()

	b2 := start(t, cfg)
	require.Len(t, readAll(t, b2.Addrs()[0], contract.TopicMonitor), 2)
	first, last, err := brokertest.Offsets(context.Background(), b2.Addrs()[0], contract.TopicMonitor, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{4, 6}, []int64{first, last})
}

func TestExecuteAppliesRetentionPeriodically(t *testing.T) {
	cfg := testConfig("")
	cfg.Partitions = 1
	cfg.RetentionCheckInterval = 20 * time.Millisecond
	b := start(t, cfg)
	produce(t, b.Addrs()[0], contract.TopicMonitor, records(3, time.Now().Add(-2*time.Hour))...)

	done := make(chan error, 1)
	go func() { done <- b.Execute() }()
	require.Eventually(t, func() bool {
		return len(readAll(t, b.Addrs()[0], contract.TopicMonitor)) == 0
	}, 5*time.Second, 20*time.Millisecond)
	b.Interrupt(nil)
	require.NoError(t, <-done)
}

func TestAdvertisedAddress(t *testing.T) {
	for _, tc := range []struct {
		name, listen, advertised string
		wantHost                 string
	}{
		{name: "unspecified host advertises loopback", listen: "0.0.0.0:0", wantHost: "127.0.0.1"},
		{name: "loopback advertises itself", listen: "127.0.0.1:0", wantHost: "127.0.0.1"},
		{name: "configured address wins", listen: "127.0.0.1:0", advertised: "localhost:19092", wantHost: "localhost"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("")
			cfg.ListenAddress = tc.listen
			cfg.AdvertisedAddress = tc.advertised
			b := start(t, cfg)
			host, _, err := net.SplitHostPort(b.Addrs()[0])
			require.NoError(t, err)
			require.Equal(t, tc.wantHost, host)
			if tc.advertised != "" {
				require.Equal(t, tc.advertised, b.Addrs()[0])
				return
			}
			// Clients are sent to the advertised address by metadata.
			conn, err := kafka.Dial("tcp", b.Addrs()[0])
			require.NoError(t, err)
			defer func() { require.NoError(t, conn.Close()) }()
			brokers, err := conn.Brokers()
			require.NoError(t, err)
			require.Len(t, brokers, 1)
			require.Equal(t, b.Addrs()[0], net.JoinHostPort(brokers[0].Host, fmt.Sprint(brokers[0].Port)))
		})
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	b := start(t, testConfig(""))
	cfg := testConfig("")
	cfg.ListenAddress = b.Addrs()[0]
	_, err := Start(cfg, nil)
	require.ErrorContains(t, err, "listen "+b.Addrs()[0])
}

func TestStartFailsOnUnreadableDataDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "meta.json"), []byte("{not json"), 0o600))
	_, err := Start(testConfig(dir), nil)
	require.ErrorContains(t, err, "start broker")
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "listen address without port", mutate: func(c *Config) { c.ListenAddress = "127.0.0.1" }, wantErr: "broker.listen-address"},
		{name: "advertised without port", mutate: func(c *Config) { c.AdvertisedAddress = "example" }, wantErr: "broker.advertised-address"},
		{name: "zero retention", mutate: func(c *Config) { c.Retention = 0 }, wantErr: "broker.retention 0s"},
		{name: "zero retention bytes", mutate: func(c *Config) { c.RetentionBytes = 0 }, wantErr: "broker.retention-bytes"},
		{name: "no partitions", mutate: func(c *Config) { c.Partitions = 0 }, wantErr: "broker.partitions"},
		{name: "no check interval", mutate: func(c *Config) { c.RetentionCheckInterval = 0 }, wantErr: "broker.retention-check-interval"},
		{name: "stream retention as the broker's", mutate: func(c *Config) { c.StreamRetention, c.StreamRetentionBytes = 0, 0 }},
		{name: "negative stream retention", mutate: func(c *Config) { c.StreamRetention = -time.Second }, wantErr: "broker.stream-retention -1s"},
		{name: "bad stream retention bytes", mutate: func(c *Config) { c.StreamRetentionBytes = -2 }, wantErr: "broker.stream-retention-bytes -2"},
		{name: "tiny segments", mutate: func(c *Config) { c.SegmentBytes = 1000 }, wantErr: "broker.segment-bytes 1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig("")
			tc.mutate(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
