package samples_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// maxFuzzLen keeps goavro, the oracle, from sizing arrays by hostile
// counts: with MaxBlockCount at the input length, any count it accepts is
// one our decoder must consider too.
const maxFuzzLen = 1 << 12

// FuzzDecode runs arbitrary records through our decoder and goavro's: they
// must agree on the batch whenever both accept, ours may reject only in the
// documented stricter cases, and what ours accepts re-encodes losslessly.
// Seeds: testdata/fuzz/FuzzDecode plus the table batches.
func FuzzDecode(f *testing.F) {
	for _, b := range tableBatches() {
		f.Add(samples.Encode(nil, b))
	}
	codec := newCodec(f)
	saved := goavro.MaxBlockCount
	goavro.MaxBlockCount = maxFuzzLen
	f.Cleanup(func() { goavro.MaxBlockCount = saved })
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzLen {
			return
		}
		ours, err := samples.Decode(data)
		native, rest, gerr := codec.NativeFromSingle(data)
		if gerr == nil && len(rest) > 0 {
			gerr = errors.New("trailing bytes")
		}
		if err != nil {
			require.Nil(t, ours)
			if gerr == nil && !stricterThanGoavro(err) {
				t.Fatalf("goavro accepts what we reject: %v", err)
			}
			return
		}
		require.NoError(t, gerr, "we accept what goavro rejects")
		requireSameBatch(t, fromNative(t, native), ours)
		requireEncodedLabelsKeyLabels(t, data)

		again, err := samples.Decode(samples.Encode(nil, ours))
		require.NoError(t, err)
		requireSameBatch(t, ours, again)
	})
}

// FuzzEncode builds batches from arbitrary strings and numbers: our
// encoding must be byte-identical to goavro's and decode back to the batch.
func FuzzEncode(f *testing.F) {
	f.Add("acme", "tma", []byte("__name__\x00cpu_usage_percent\x00resource\x00web-1"), int64(1700000000000), 42.5, uint8(2), "percent", "CPU usage.", uint8(3))
	f.Add("", "", []byte{}, int64(math.MinInt64), math.Inf(-1), uint8(0), "", "", uint8(0))
	f.Add("t", "s", []byte("\x00\x00\xff\xfe"), int64(-1), math.NaN(), uint8(9), "u", "h", uint8(255))
	codec := newCodec(f)
	f.Fuzz(func(t *testing.T, tenant, source string, labelBlob []byte, ts int64, v float64, typ uint8, unit, help string, shape uint8) {
		parts := bytes.Split(labelBlob, []byte{0})
		var ls []samples.Label
		for i := 0; i+1 < len(parts); i += 2 {
			ls = append(ls, samples.Label{Name: string(parts[i]), Value: string(parts[i+1])})
		}
		b := &samples.Batch{Tenant: tenant, Source: source}
		// shape picks how many series, samples and which carry metadata.
		for i := range int(shape % 4) {
			s := samples.Series{Labels: ls}
			for j := range int(shape/4%4) + i {
				s.Samples = append(s.Samples, samples.Sample{TimestampMs: ts + int64(j), Value: v * float64(j)})
			}
			if shape&(1<<(4+i)) != 0 {
				s.Metadata = &samples.Metadata{Type: metricTypeFrom(typ + uint8(i)), Unit: unit, Help: help}
			}
			b.Series = append(b.Series, s)
		}

		ours := samples.Encode(nil, b)
		require.Len(t, ours, samples.EncodedLen(b))
		theirs, err := codec.SingleFromNative(nil, toNative(b))
		require.NoError(t, err)
		require.Equal(t, theirs, ours)

		got, err := samples.Decode(ours)
		require.NoError(t, err)
		requireSameBatch(t, b, got)
	})
}

// metricTypeFrom includes two values outside the enum.
func metricTypeFrom(i uint8) samples.MetricType {
	all := []samples.MetricType{samples.Unknown, samples.Counter, samples.Gauge, samples.Histogram,
		samples.GaugeHistogram, samples.Summary, samples.Info, samples.StateSet, "", "bogus"}
	return all[int(i)%len(all)]
}
