package monitor

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/ingest"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// requireValidSeries checks what a decoder hands on: labels valid and
// sorted, samples in time order, counts right, and the batches encodable
// into records that decode to the same series.
func requireValidSeries(t *testing.T, series []samples.Series, n int) {
	t.Helper()
	total := 0
	for _, s := range series {
		require.NoError(t, ingest.CheckLabels(s.Labels))
		require.NotEmpty(t, s.Samples)
		require.True(t, slices.IsSortedFunc(s.Samples, ingest.CmpSampleTime))
		total += len(s.Samples)
	}
	require.Equal(t, n, total)
	if len(series) == 0 {
		return
	}
	var got []samples.Series
	for _, m := range ingest.SampleRecords("t", samples.SourceRemoteWrite, 1, series) {
		b, err := samples.Decode(m.Payload)
		require.NoError(t, err)
		got = append(got, b.Series...)
	}
	require.Len(t, got, len(series))
}

func FuzzDecodeRemoteWrite(f *testing.F) {
	f.Add(encodeV1(f, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{Labels: lbls("__name__", "up", "job", "x"), Samples: []prompb.Sample{{Value: 1, Timestamp: 2}, {Value: 0, Timestamp: 1}}}},
		Metadata:   []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "up", Help: "h"}},
	}), false)
	f.Add(encodeV2(f, v2Series{labels: []string{"__name__", "c_total", "a", ""}, samples: []writev2.Sample{{Value: 1, Timestamp: 1}}, typ: writev2.Metadata_METRIC_TYPE_COUNTER, unit: "s"}), true)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, body []byte, v2 bool) {
		v := rwV1
		if v2 {
			v = rwV2
		}
		req, err := decodeRemoteWrite(v, body, 1<<20)
		if err != nil {
			require.Contains(t, err.Error(), "decode remote write: ")
			return
		}
		requireValidSeries(t, req.series, req.samples)
	})
}
