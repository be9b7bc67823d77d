package main_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka/kafkatest"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

// TestCompressedTopics: every producer of the all-in-one compresses with
// -kafka.compression (zstd by default): the monitor's topic-monitor batches
// and the labeler's topic-metrics batches are stored compressed, kcat reads
// the posted message byte for byte, and the persister still finds the
// sample.
func TestCompressedTopics(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		codec string // as the broker's batches name it
	}{
		{name: "default", codec: kafka.DefaultCompression},
		{name: "lz4", args: []string{"-kafka.compression=lz4"}, codec: "lz4"},
		{name: "none", args: []string{"-kafka.compression=none"}, codec: "uncompressed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tf := startTmaflow(t, tc.args...)
			msg := cpuMessage(42.5, time.Now())
			require.Equal(t, http.StatusOK, post(t, tf.url, msg, demoProbe, demoSecret).code)
			awaitSeries(t, tf, `cpu_usage_percent{resource="demo-host"}`, 1)

			for _, topic := range []string{contract.TopicMonitor, contract.TopicMetrics} {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				codecs, err := kafkatest.BatchCodecs(ctx, tf.kafka, topic)
				cancel()
				require.NoError(t, err)
				require.NotEmpty(t, codecs, topic)
				require.Equal(t, slices.Repeat([]string{tc.codec}, len(codecs)), codecs, topic)
			}
			got := kafkatest.Kcat(t, "-C", "-b", tf.kafka, "-t", contract.TopicMonitor, "-f", "%s", "-o", "beginning", "-e", "-q")
			require.Equal(t, string(msg), string(got))
		})
	}
}
