package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka/kafkatest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// TestMainReadsCompressed: the labeler reads topic-monitor records
// whichever codec their producer compressed them with, and compresses its
// own topic-metrics batches with -kafka.compression.
func TestMainReadsCompressed(t *testing.T) {
	brokers := startKafka(t)
	stop := startLabeler(t, brokers, "--kafka.compression=lz4")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var want []float64
	for i, codec := range kafka.Compressions() {
		cfg := kafka.DefaultConfig()
		cfg.Brokers = brokers
		cfg.Partitions = 2
		cfg.Compression = codec
		pub, err := kafka.NewPublisher(cfg, nil, nil)
		require.NoError(t, err)
		value := float64(i) + 0.5
		m := message.NewMessage("", fmt.Appendf(nil, `{"probeId":1,"resourceId":101098,"messageId":%d,"sentTime":1700000000,`+
			`"data":[{"descriptionId":28,"type":"measurement","observations":[{"time":1700000000,"value":%g}]}]}`, i, value))
		bus.SetKey(m, contract.ResourceKey(101098))
		m.Metadata.Set(contract.HeaderTenant, "acme")
		m.Metadata.Set(contract.HeaderSource, contract.SourceHTTP)
		m.Metadata.Set(contract.HeaderReceivedAt, "1700000000000000001")
		m.Metadata.Set(contract.HeaderContentType, contract.ContentTypeTMA)
		require.NoError(t, pub.Publish(contract.TopicMonitor, m), codec)
		require.NoError(t, pub.Close())
		want = append(want, value)
	}
	// One batch per codec on topic-monitor, as produced.
	codecs, err := kafkatest.BatchCodecs(ctx, brokers[0], contract.TopicMonitor)
	require.NoError(t, err)
	require.Equal(t, []string{"uncompressed", "gzip", "snappy", "lz4", "zstd"}, codecs)

	// Records of one resource consumed together make one topic-metrics
	// record: read the samples.
	var got []float64
	require.Eventually(t, func() bool {
		var recs []kafkago.Message
		if recs, err = brokertest.ReadAll(ctx, brokers[0], contract.TopicMetrics); err != nil {
			return false
		}
		got = got[:0]
		for _, r := range recs {
			b, err := samples.Decode(r.Value)
			require.NoError(t, err)
			for _, ser := range b.Series {
				for _, smp := range ser.Samples {
					got = append(got, smp.Value)
				}
			}
		}
		return len(got) == len(want)
	}, 20*time.Second, 50*time.Millisecond, "%d of %d samples on topic-metrics: %v", len(got), len(want), err)
	require.Equal(t, want, got, "every record labelled, in order")
	codecs, err = kafkatest.BatchCodecs(ctx, brokers[0], contract.TopicMetrics)
	require.NoError(t, err)
	require.NotEmpty(t, codecs)
	require.Equal(t, slices.Repeat([]string{kafka.CompressionLz4}, len(codecs)), codecs, "the labeler's batches")
	stop()
}
