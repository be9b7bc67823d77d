package monitor

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// requireValidSeries checks what a decoder hands on: labels valid and
// sorted, samples in time order, counts right, and the batches encodable
// into records that decode to the same series.
func requireValidSeries(t *testing.T, series []samples.Series, n int) {
	t.Helper()
	total := 0
	for _, s := range series {
		require.NoError(t, checkLabels(s.Labels))
		require.NotEmpty(t, s.Samples)
		require.True(t, slices.IsSortedFunc(s.Samples, cmpSampleTime))
		total += len(s.Samples)
	}
	require.Equal(t, n, total)
	if len(series) == 0 {
		return
	}
	var got []samples.Series
	for _, m := range sampleRecords("t", samples.SourceRemoteWrite, 1, series) {
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

func FuzzParseText(f *testing.F) {
	f.Add([]byte("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3 1700000000000\nb 2\n"), false, []byte("job=j"))
	f.Add([]byte("# TYPE a counter\n# UNIT a bytes\na_total{x=\"1\"} 3 1700000000.5 # {t=\"1\"} 1\n# EOF\n"), true, []byte(""))
	f.Add([]byte("{\"quoted.name\",a=\"b\"} NaN\n"), false, []byte("a=b"))
	f.Fuzz(func(t *testing.T, body []byte, om bool, extra []byte) {
		format := formatText
		if om {
			format = formatOpenMetrics
		}
		var ls []samples.Label
		if name, value, ok := cutLabel(string(extra)); ok {
			ls = []samples.Label{{Name: name, Value: value}}
		}
		series, n, _, err := parseText(format, body, 1, ls)
		if err != nil {
			require.Contains(t, err.Error(), "parse ")
			return
		}
		requireValidSeries(t, series, n)
		for _, s := range series {
			for j := 1; j < len(s.Samples); j++ {
				require.NotEqual(t, s.Samples[j-1].TimestampMs, s.Samples[j].TimestampMs)
			}
		}
	})
}

// cutLabel reads name=value, for a valid label name only.
func cutLabel(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == '=' {
			name := s[:i]
			if _, err := importLabels(map[string][]string{"extra_label": {s}}); err != nil || name == "" {
				return "", "", false
			}
			return name, s[i+1:], true
		}
	}
	return "", "", false
}
