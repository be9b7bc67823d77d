package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// fetchTestCluster starts a kfake cluster of brokers with topic "t" of
// partitions partitions and returns it and a client of it.
func fetchTestCluster(t *testing.T, brokers, partitions int) (*kfake.Cluster, *kafka.Client, Config) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(brokers), kfake.SeedTopics(int32(partitions), "t"))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cfg := DefaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.FetchMaxWait = 50 * time.Millisecond
	cfg.NackBackoff = 10 * time.Millisecond
	transport := cfg.transport()
	t.Cleanup(transport.CloseIdleConnections)
	return c, &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: transport, Timeout: 5 * time.Second}, cfg
}

// produceTo writes values to one partition of "t".
func produceTo(t *testing.T, client *kafka.Client, partition int, values ...string) {
	t.Helper()
	recs := make([]kafka.Record, len(values))
	for i, v := range values {
		recs[i] = kafka.Record{Key: kafka.NewBytes([]byte(fmt.Sprint(partition))), Value: kafka.NewBytes([]byte(v)),
			Headers: []kafka.Header{{Key: "h", Value: []byte(v)}}}
	}
	res, err := client.Produce(context.Background(), &kafka.ProduceRequest{
		Topic: "t", Partition: partition, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(recs...),
	})
	require.NoError(t, err)
	require.NoError(t, res.Error)
}

// runFetcher starts f until the test ends.
func runFetcher(t *testing.T, f *fetcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func next(t *testing.T, fd *feed) kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := fd.FetchMessage(ctx)
	require.NoError(t, err)
	return m
}

// Partitions led by different brokers are fetched by one request per
// leader, and each partition's records come in order with their key,
// headers and high watermark.
func TestFetcherReadsEveryLeader(t *testing.T) {
	const partitions, perPartition = 6, 5
	_, client, cfg := fetchTestCluster(t, 3, partitions)
	offsets := map[int]int64{}
	for p := range partitions {
		offsets[p] = kafka.FirstOffset
		for i := range perPartition {
			produceTo(t, client, p, fmt.Sprintf("p%d-%d", p, i))
		}
	}
	f := newFetcher("t", client, newFetchConfig(cfg), slog.New(slog.DiscardHandler), offsets)
	layout, err := f.layout(context.Background())
	require.NoError(t, err)
	require.Greater(t, len(layout), 1, "kfake spreads the leaders over its brokers")
	runFetcher(t, f)
	for p := range partitions {
		for i := range perPartition {
			m := next(t, f.feed(p))
			require.Equal(t, fmt.Sprintf("p%d-%d", p, i), string(m.Value))
			require.Equal(t, fmt.Sprint(p), string(m.Key))
			require.Equal(t, []kafka.Header{{Key: "h", Value: m.Value}}, m.Headers)
			require.Equal(t, int64(i), m.Offset)
			require.Equal(t, p, m.Partition)
			require.Equal(t, "t", m.Topic)
			require.Equal(t, int64(perPartition), m.HighWaterMark)
		}
	}
	// Records produced later arrive too.
	produceTo(t, client, 2, "late")
	require.Equal(t, "late", string(next(t, f.feed(2)).Value))
}

func TestFetcherOffsets(t *testing.T) {
	_, client, cfg := fetchTestCluster(t, 1, 3)
	for p := range 3 {
		produceTo(t, client, p, "a", "b", "c")
	}
	fc := newFetchConfig(cfg) // resets to the earliest offset
	f := newFetcher("t", client, fc, slog.New(slog.DiscardHandler), map[int]int64{
		0: 1,                // a committed offset
		1: kafka.LastOffset, // only what comes next
		2: 1000,             // out of range: starts again at the earliest
	})
	runFetcher(t, f)
	require.Equal(t, "b", string(next(t, f.feed(0)).Value))
	require.Equal(t, "a", string(next(t, f.feed(2)).Value))
	produceTo(t, client, 1, "d")
	m := next(t, f.feed(1))
	require.Equal(t, "d", string(m.Value))
	require.Equal(t, int64(3), m.Offset)
}

// A full queue leaves its partition out of the fetches until its consumer
// takes records; a closed feed is no longer fetched.
func TestFetcherQueueBound(t *testing.T) {
	_, client, cfg := fetchTestCluster(t, 1, 2)
	fc := newFetchConfig(cfg)
	fc.queueRecords = 2
	f := newFetcher("t", client, fc, slog.New(slog.DiscardHandler), map[int]int64{0: kafka.FirstOffset, 1: kafka.FirstOffset})
	runFetcher(t, f)
	queued := func(p int) int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.feeds[p].queue)
	}
	for i := range 3 {
		produceTo(t, client, 0, fmt.Sprint(i))
		require.Eventually(t, func() bool { return queued(0) == min(i+1, 2) }, 5*time.Second, 5*time.Millisecond)
	}
	time.Sleep(3 * cfg.FetchMaxWait)
	require.Equal(t, 2, queued(0), "not fetched while full")
	require.Equal(t, "0", string(next(t, f.feed(0)).Value))
	require.Equal(t, "1", string(next(t, f.feed(0)).Value))
	require.Equal(t, "2", string(next(t, f.feed(0)).Value), "fetched once there was room")

	require.NoError(t, f.feed(1).Close())
	produceTo(t, client, 1, "x")
	time.Sleep(3 * cfg.FetchMaxWait)
	require.Zero(t, queued(1), "a closed feed is not fetched")
}

// A partition whose leader moves is fetched from its new leader.
func TestFetcherFollowsLeader(t *testing.T) {
	c, client, cfg := fetchTestCluster(t, 2, 1)

	produceTo(t, client, 0, "before")
	f := newFetcher("t", client, newFetchConfig(cfg), slog.New(slog.DiscardHandler), map[int]int64{0: kafka.FirstOffset})
	runFetcher(t, f)
	require.Equal(t, "before", string(next(t, f.feed(0)).Value))

	require.NoError(t, c.MoveTopicPartition("t", 0, 1-c.LeaderFor("t", 0)))
	moved := time.Now()
	require.Eventually(t, func() bool {
		res, err := client.Produce(context.Background(), &kafka.ProduceRequest{
			Topic: "t", Partition: 0, RequiredAcks: kafka.RequireAll, Records: kafka.NewRecordReader(kafka.Record{Value: kafka.NewBytes([]byte("after"))}),
		})
		return err == nil && res.Error == nil
	}, 10*time.Second, 50*time.Millisecond, "produce to the new leader")
	produced := time.Now()
	m := next(t, f.feed(0))
	t.Logf("moved, produced after %s, fetched %s later", produced.Sub(moved), time.Since(produced))
	require.Equal(t, "after", string(m.Value))
}
