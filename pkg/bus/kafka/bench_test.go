package kafka_test

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

// payload is about the size of a 20-observation TMA message.
var payload = []byte(`{"probeId":1,"resourceId":101098,"messageId":0,"sentTime":1700000000,"data":[{"type":"measurement","descriptionId":1,"observations":[` +
	`{"time":1700000000,"value":1.5},{"time":1700000001,"value":1.5},{"time":1700000002,"value":1.5},{"time":1700000003,"value":1.5},` +
	`{"time":1700000004,"value":1.5},{"time":1700000005,"value":1.5},{"time":1700000006,"value":1.5},{"time":1700000007,"value":1.5},` +
	`{"time":1700000008,"value":1.5},{"time":1700000009,"value":1.5},{"time":1700000010,"value":1.5},{"time":1700000011,"value":1.5},` +
	`{"time":1700000012,"value":1.5},{"time":1700000013,"value":1.5},{"time":1700000014,"value":1.5},{"time":1700000015,"value":1.5},` +
	`{"time":1700000016,"value":1.5},{"time":1700000017,"value":1.5},{"time":1700000018,"value":1.5},{"time":1700000019,"value":1.5}]}]}`)

func benchPublisher(b *testing.B) *kafka.Publisher {
	b.Helper()
	cfg := testConfig(newCluster(b))
	pub, err := kafka.NewPublisher(cfg, testLogger(b), nil)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, pub.Close()) })
	require.NoError(b, pub.CreateTopics(context.Background(), contract.TopicMonitor))
	return pub
}

func monitorRecord(resource int64) *message.Message {
	m := message.NewMessage("", payload)
	bus.SetKey(m, contract.ResourceKey(resource))
	m.Metadata.Set(contract.HeaderTenant, contract.DefaultTenant)
	m.Metadata.Set(contract.HeaderSource, contract.SourceHTTP)
	m.Metadata.Set(contract.HeaderReceivedAt, strconv.FormatInt(time.Now().UnixNano(), 10))
	m.Metadata.Set(contract.HeaderContentType, contract.ContentTypeTMA)
	return m
}

// BenchmarkPublishLatency is one publisher under light load: every Publish
// waits for the broker's acknowledgement before the next starts.
func BenchmarkPublishLatency(b *testing.B) {
	pub := benchPublisher(b)
	lat := make([]time.Duration, 0, b.N)
	var i int64
	for b.Loop() {
		i++
		start := time.Now()
		if err := pub.Publish(contract.TopicMonitor, monitorRecord(i)); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPublishParallel is many goroutines publishing single records,
// as the monitor's HTTP handlers do; they share produce batches.
func BenchmarkPublishParallel(b *testing.B) {
	for _, par := range []int{8, 32, 128} {
		b.Run("goroutines="+strconv.Itoa(par), func(b *testing.B) {
			pub := benchPublisher(b)
			var next atomic.Int64
			b.SetParallelism(max(par/runtimeProcs(), 1))
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := pub.Publish(contract.TopicMonitor, monitorRecord(next.Add(1)%1000)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkSubscribe consumes records spread over 8 partitions with a
// consumer group, acknowledging each at once, as a fast handler would.
func BenchmarkSubscribe(b *testing.B) {
	brokers := newCluster(b)
	cfg := testConfig(brokers)
	cfg.ConsumerGroup = "bench"
	pub, err := kafka.NewPublisher(cfg, testLogger(b), nil)
	require.NoError(b, err)
	defer func() { require.NoError(b, pub.Close()) }()
	const batch = 1000
	for i := 0; i < b.N; i += batch {
		msgs := make([]*message.Message, 0, batch)
		for j := i; j < min(i+batch, b.N); j++ {
			msgs = append(msgs, monitorRecord(int64(j)))
		}
		require.NoError(b, pub.Publish(contract.TopicMonitor, msgs...))
	}
	sub, err := kafka.NewSubscriber(cfg, testLogger(b), nil)
	require.NoError(b, err)
	defer func() { require.NoError(b, sub.Close()) }()

	b.ResetTimer()
	start := time.Now()
	msgs, err := sub.Subscribe(context.Background(), contract.TopicMonitor)
	require.NoError(b, err)
	for range b.N {
		(<-msgs).Ack()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
