package nats_test

import (
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/bus/nats/natstest"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

// benchRecord is a topic-monitor record of about a 20-observation TMA
// message, with the contract's headers.
func benchRecord(resource int64) *message.Message {
	m := message.NewMessage("", make([]byte, 900))
	bus.SetKey(m, contract.ResourceKey(resource))
	m.Metadata.Set(contract.HeaderTenant, contract.DefaultTenant)
	m.Metadata.Set(contract.HeaderSource, contract.SourceHTTP)
	m.Metadata.Set(contract.HeaderReceivedAt, strconv.FormatInt(time.Now().UnixNano(), 10))
	return m
}

// benchServer starts an embedded server fsyncing as sync says.
func benchServer(b *testing.B, sync string) nats.Config {
	srv, err := nats.StartServer(nats.ServerConfig{ListenAddress: "127.0.0.1:0", StoreDir: b.TempDir(), SyncInterval: sync, MaxStore: -1}, nil)
	require.NoError(b, err)
	b.Cleanup(srv.Close)
	return natstest.Config(srv.URL())
}

var syncs = []string{nats.SyncAlways, "2m"}

// BenchmarkNATSPublish: one publisher waiting for each PubAck (latency),
// and 32 goroutines publishing single messages as the monitor's handlers
// do (throughput), with and without fsync before the acknowledgement.
func BenchmarkNATSPublish(b *testing.B) {
	for _, sync := range syncs {
		b.Run("sync="+sync+"/sequential", func(b *testing.B) {
			pub := publisher(b, benchServer(b, sync))
			lat := make([]time.Duration, 0, b.N)
			var i int64
			for b.Loop() {
				i++
				start := time.Now()
				require.NoError(b, pub.Publish(contract.TopicMonitor, benchRecord(i)))
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
		b.Run("sync="+sync+"/goroutines=32", func(b *testing.B) {
			pub := publisher(b, benchServer(b, sync))
			var next atomic.Int64
			b.SetParallelism(32)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := pub.Publish(contract.TopicMonitor, benchRecord(next.Add(1)%1000)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkNATSSubscribe consumes messages of 8 partitions in a group,
// acknowledging each at once.
func BenchmarkNATSSubscribe(b *testing.B) {
	cfg := benchServer(b, nats.SyncAlways)
	pub := publisher(b, cfg)
	for i := 0; i < b.N; i += 500 {
		var msgs []*message.Message
		for j := i; j < min(i+500, b.N); j++ {
			msgs = append(msgs, benchRecord(int64(j)))
		}
		require.NoError(b, pub.Publish(contract.TopicMonitor, msgs...))
	}
	cfg.ConsumerGroup = "bench"
	sub, err := nats.NewSubscriber(cfg, testLogger(), nil)
	require.NoError(b, err)
	defer func() { require.NoError(b, sub.Close()) }()
	b.ResetTimer()
	start := time.Now()
	ch, err := sub.Subscribe(b.Context(), contract.TopicMonitor)
	require.NoError(b, err)
	for range b.N {
		(<-ch).Ack()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
