package bridge

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

func sampleJob(tenant, topic string, v float64) *job {
	d := sampleDecoded(inbound{tenant: tenant, topic: topic, received: time.Unix(1, 0)}, []samples.Series{{
		Labels:  []samples.Label{{Name: "__name__", Value: "m"}, {Name: "t", Value: topic}},
		Samples: []samples.Sample{{TimestampMs: 1000, Value: v}},
	}})
	return &job{d: d, done: make(chan error, 1)}
}

// A batch merges the series of one tenant's messages into shared records
// when allowed, keeping the mqtt-topic header only for a single topic.
func TestBatchMerge(t *testing.T) {
	for _, tc := range []struct {
		name        string
		merge       bool
		topics      []string
		wantRecords int
		wantHeader  string
	}{
		{"merged, two topics", true, []string{"a/1", "a/2"}, 1, ""},
		{"merged, one topic", true, []string{"a/1", "a/1"}, 1, "a/1"},
		{"apart", false, []string{"a/1", "a/2"}, 2, "a/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := newFakeBus()
			b := newBatcher(bus, 10, time.Second, time.Now, newMetrics(prometheus.NewRegistry()))
			b.merge.Store(tc.merge)
			var batch []*job
			for i, topic := range tc.topics {
				batch = append(batch, sampleJob("acme", topic, float64(i)))
			}
			b.flush(context.Background(), batch)
			for _, j := range batch {
				require.NoError(t, <-j.done)
			}
			recs := bus.topic(contract.TopicSamples)
			require.Len(t, recs, tc.wantRecords)
			require.Equal(t, tc.wantHeader, recs[0].Metadata[contract.HeaderMQTTTopic])
			n := 0
			for _, r := range recs {
				bt, err := samples.Decode(r.Payload)
				require.NoError(t, err)
				n += len(bt.Series)
			}
			require.Equal(t, len(tc.topics), n, "every series stored")
		})
	}
}

// Merging is off when the labeler's rules read __mqtt_topic__, or without
// a registry.
func TestMergeFor(t *testing.T) {
	p := &pipeline{batcher: newBatcher(newFakeBus(), 1, time.Second, time.Now, newMetrics(prometheus.NewRegistry()))}
	p.mergeFor(&registry.File{})
	require.True(t, p.batcher.merge.Load())
	p.mergeFor(&registry.File{LabelRules: []registry.LabelRule{{SourceLabels: []string{"__mqtt_topic__"}, Action: registry.ActionReplace}}})
	require.False(t, p.batcher.merge.Load())
	p.mergeFor(&registry.File{LabelRules: []registry.LabelRule{{Action: registry.ActionLabelMap}}})
	require.False(t, p.batcher.merge.Load())
	p.mergeFor(nil)
	require.False(t, p.batcher.merge.Load())
}
