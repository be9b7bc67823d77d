package ingest

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// requireValidSeries checks what the parser hands on: labels valid and
// sorted, samples in time order, counts right, and the batches encodable
// into records that decode to the same series.
func requireValidSeries(t *testing.T, series []samples.Series, n int) {
	t.Helper()
	total := 0
	for _, s := range series {
		require.NoError(t, CheckLabels(s.Labels))
		require.NotEmpty(t, s.Samples)
		require.True(t, slices.IsSortedFunc(s.Samples, CmpSampleTime))
		total += len(s.Samples)
	}
	require.Equal(t, n, total)
	if len(series) == 0 {
		return
	}
	var got []samples.Series
	for _, m := range SampleRecords("t", samples.SourceRemoteWrite, 1, series) {
		b, err := samples.Decode(m.Payload)
		require.NoError(t, err)
		got = append(got, b.Series...)
	}
	require.Len(t, got, len(series))
}

func FuzzParseText(f *testing.F) {
	f.Add([]byte("# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\"} 3 1700000000000\nb 2\n"), false, []byte("job=j"))
	f.Add([]byte("# TYPE a counter\n# UNIT a bytes\na_total{x=\"1\"} 3 1700000000.5 # {t=\"1\"} 1\n# EOF\n"), true, []byte(""))
	f.Add([]byte("{\"quoted.name\",a=\"b\"} NaN\n"), false, []byte("a=b"))
	f.Fuzz(func(t *testing.T, body []byte, om bool, extra []byte) {
		format := FormatText
		if om {
			format = FormatOpenMetrics
		}
		var ls []samples.Label
		if name, value, ok := cutLabel(string(extra)); ok {
			ls = []samples.Label{{Name: name, Value: value}}
		}
		series, n, _, err := ParseText(format, body, 1, ls)
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
	name, value, ok := strings.Cut(s, "=")
	if !ok || !model.UTF8Validation.IsValidLabelName(name) || strings.HasPrefix(name, "__") {
		return "", "", false
	}
	return name, value, true
}
