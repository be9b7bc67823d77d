package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// TestMainMergesBatch: the records of one resource consumed in one batch
// become fewer topic-metrics records under the resource's key, every
// sample in the order it was produced, with the earliest received-at.
func TestMainMergesBatch(t *testing.T) {
	brokers := startKafka(t)
	cfg := kafka.DefaultConfig()
	cfg.Brokers = brokers
	cfg.Partitions = 2
	pub, err := kafka.NewPublisher(cfg, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	const n = 200
	msgs := make([]*message.Message, n)
	for i := range msgs {
		m := message.NewMessage("", fmt.Appendf(nil, `{"probeId":1,"resourceId":101098,"messageId":%d,"sentTime":1700000000,`+
			`"data":[{"descriptionId":28,"type":"measurement","observations":[{"time":%d,"value":%d}]}]}`, i, 1700000000+i, i))
		bus.SetKey(m, contract.ResourceKey(101098))
		m.Metadata.Set(contract.HeaderTenant, "acme")
		m.Metadata.Set(contract.HeaderReceivedAt, fmt.Sprint(1700000000000000000+int64(i)))
		msgs[i] = m
	}
	// Produced before the labeler starts: it finds whole fetches waiting.
	require.NoError(t, pub.Publish(contract.TopicMonitor, msgs...))
	stop := startLabeler(t, brokers)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []float64
	var records int
	require.Eventually(t, func() bool {
		recs, err := brokertest.ReadAll(ctx, brokers[0], contract.TopicMetrics)
		if err != nil {
			return false // not created yet
		}
		got, records = got[:0], len(recs)
		for _, r := range recs {
			require.Equal(t, string(samples.MetricsKey("acme", "resource_id=101098")), string(r.Key), "the resource's key")
			b, err := samples.Decode(r.Value)
			require.NoError(t, err)
			for _, ser := range b.Series {
				for _, smp := range ser.Samples {
					got = append(got, smp.Value)
				}
			}
		}
		return len(got) >= n
	}, 20*time.Second, 50*time.Millisecond)
	want := make([]float64, n)
	for i := range want {
		want[i] = float64(i)
	}
	require.Equal(t, want, got, "every sample once, in order")
	require.Less(t, records, n/2, "records of one resource consumed together are merged")
}
