package broker

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// TestStreamTopicsRetention: the stream topics keep their own retention,
// the other topics the broker's; a restart applies the flags of that
// start, not those the data dir was written with.
func TestStreamTopicsRetention(t *testing.T) {
	dir := t.TempDir()
	old := time.Now().Add(-2 * time.Hour)
	cfg := testConfig(dir)
	cfg.Partitions = 1
	cfg.Retention = 3 * time.Hour
	cfg.StreamRetention = time.Hour
	b := start(t, cfg)
	addr := b.Addrs()[0]
	for _, topic := range []string{contract.TopicMonitor, contract.TopicMetrics, contract.TopicAlerts, contract.TopicDLQ} {
		produce(t, addr, topic, records(3, old)...)
		produce(t, addr, topic, records(2, time.Now())...)
	}
	b.ApplyRetention()
	require.Len(t, readAll(t, addr, contract.TopicMonitor), 2, "stream topic: 1h")
	require.Len(t, readAll(t, addr, contract.TopicMetrics), 2, "stream topic: 1h")
	require.Len(t, readAll(t, addr, contract.TopicAlerts), 5, "other topics: 3h")
	require.Len(t, readAll(t, addr, contract.TopicDLQ), 5)
	b.Close()

	// Restarted with a shorter retention for every topic.
	cfg.Retention = time.Hour
	b = start(t, cfg)
	b.ApplyRetention()
	require.Len(t, readAll(t, b.Addrs()[0], contract.TopicAlerts), 2)
	require.Len(t, readAll(t, b.Addrs()[0], contract.TopicMonitor), 2)
}

func TestStreamRetentionBytes(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Partitions = 1
	cfg.Retention = 3 * time.Hour
	// One batch of about 170 bytes per produce call: the limit keeps one.
	cfg.StreamRetentionBytes = 250
	b := start(t, cfg)
	addr := b.Addrs()[0]
	for _, topic := range []string{contract.TopicSamples, contract.TopicReports} {
		produce(t, addr, topic, records(3, time.Now())...)
		produce(t, addr, topic, records(3, time.Now())...)
	}
	b.ApplyRetention()
	require.Len(t, readAll(t, addr, contract.TopicSamples), 3)
	require.Len(t, readAll(t, addr, contract.TopicReports), 6, "no byte limit beyond the stream topics")
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestRetentionFreesBatchState: the broker keeps per-batch state in memory
// (kfake's segment index, about 100 bytes a batch) for as long as the
// batch is retained; retention must free it again.
func TestRetentionFreesBatchState(t *testing.T) {
	if testing.Short() {
		t.Skip("produces 40,000 batches")
	}
	cfg := testConfig(t.TempDir())
	cfg.Partitions = 4
	cfg.Retention = 3 * time.Hour
	cfg.StreamRetention = time.Hour
	b := start(t, cfg)

	// One record per produce request: one batch each, as the monitor's
	// produces are at light load.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()[0]), kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxProduceRequestsInflightPerBroker(1), kgo.ProducerBatchCompression(kgo.NoCompression()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const batches = 40_000
	old := time.Now().Add(-2 * time.Hour)
	before := liveHeap()
	for i := range batches {
		r := &kgo.Record{Topic: contract.TopicMetrics, Partition: int32(i % cfg.Partitions), Value: []byte("v"), Timestamp: old}
		require.NoError(t, cl.ProduceSync(ctx, r).FirstErr())
	}
	grown := liveHeap()
	perBatch := float64(int64(grown)-int64(before)) / batches
	t.Logf("live heap %d → %d bytes after %d batches: %.0f bytes per batch", before, grown, batches, perBatch)
	require.Greater(t, perBatch, 40.0, "the measurement sees the per-batch state")

	b.ApplyRetention()
	// kfake drops a deleted segment from its partition's slice of
	// segments, whose array lets go of it with the partition's next
	// segment: an idle partition holds one deleted segment's index.
	for p := range cfg.Partitions {
		require.NoError(t, cl.ProduceSync(ctx, &kgo.Record{Topic: contract.TopicMetrics, Partition: int32(p), Value: []byte("new")}).FirstErr())
	}
	freed := liveHeap()
	t.Logf("after retention: %d bytes (%.0f bytes per deleted batch left)", freed, float64(int64(freed)-int64(before))/batches)
	require.Less(t, int64(freed)-int64(before), int64(grown-before)/5, "retention freed at least 80%% of the batch state")
	require.Len(t, readAll(t, b.Addrs()[0], contract.TopicMetrics), cfg.Partitions)
}

// TestRetentionCountsUnconsumedRecords: records retention deletes before a
// consumer group committed past them are counted and logged, never lost
// silently.
func TestRetentionCountsUnconsumedRecords(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.Partitions = 1
	reg := prometheus.NewRegistry()
	b, err := Start(cfg, nil, Metrics(reg))
	require.NoError(t, err)
	t.Cleanup(b.Close)
	addr := b.Addrs()[0]
	produce(t, addr, contract.TopicMetrics, records(5, time.Now().Add(-2*time.Hour))...)
	produce(t, addr, contract.TopicMetrics, records(2, time.Now())...)

	// The persister's group read two of the five old records, the
	// ruler-like reader none (no group: nothing to lose on its behalf).
	cl := &kafka.Client{Addr: kafka.TCP(addr)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: "tmaflow-persister", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{contract.TopicMetrics: {{Partition: 0, Offset: 2}}},
	})
	require.NoError(t, err)
	_, err = cl.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: "caught-up", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{contract.TopicMetrics: {{Partition: 0, Offset: 7}}},
	})
	require.NoError(t, err)

	b.ApplyRetention()
	require.Len(t, readAll(t, addr, contract.TopicMetrics), 2)
	require.Equal(t, 3.0, testutil.ToFloat64(b.metrics.unconsumed.WithLabelValues(contract.TopicMetrics, "tmaflow-persister")))
	require.Equal(t, 0.0, testutil.ToFloat64(b.metrics.unconsumed.WithLabelValues(contract.TopicMetrics, "caught-up")))
	require.Equal(t, 2.0, testutil.ToFloat64(b.metrics.records.WithLabelValues(contract.TopicMetrics)))

	// A second pass deletes nothing more and counts nothing again.
	b.ApplyRetention()
	require.Equal(t, 3.0, testutil.ToFloat64(b.metrics.unconsumed.WithLabelValues(contract.TopicMetrics, "tmaflow-persister")))
}
