package samples_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/schemas"
)

func newCodec(tb testing.TB) *goavro.Codec {
	tb.Helper()
	c, err := goavro.NewCodec(schemas.SampleBatchAvsc())
	require.NoError(tb, err)
	return c
}

// toNative is the goavro form of b. Metric types outside the enum become
// UNKNOWN, as Encode documents.
func toNative(b *samples.Batch) map[string]any {
	series := make([]any, 0, len(b.Series))
	for _, s := range b.Series {
		labels := make([]any, 0, len(s.Labels))
		for _, l := range s.Labels {
			labels = append(labels, map[string]any{"name": l.Name, "value": l.Value})
		}
		smp := make([]any, 0, len(s.Samples))
		for _, x := range s.Samples {
			smp = append(smp, map[string]any{"timestamp_ms": x.TimestampMs, "value": x.Value})
		}
		var meta any
		if s.Metadata != nil {
			t := s.Metadata.Type
			if !t.Valid() {
				t = samples.Unknown
			}
			meta = goavro.Union("io.tmaflow.Metadata", map[string]any{
				"type": string(t), "unit": s.Metadata.Unit, "help": s.Metadata.Help,
			})
		}
		series = append(series, map[string]any{"labels": labels, "samples": smp, "metadata": meta})
	}
	return map[string]any{"tenant": b.Tenant, "source": b.Source, "series": series}
}

// fromNative is the inverse of toNative, with empty arrays as nil slices
// like Decode.
func fromNative(tb testing.TB, v any) *samples.Batch {
	tb.Helper()
	m := v.(map[string]any)
	b := &samples.Batch{Tenant: m["tenant"].(string), Source: m["source"].(string)}
	for _, sv := range m["series"].([]any) {
		sm := sv.(map[string]any)
		var s samples.Series
		for _, lv := range sm["labels"].([]any) {
			l := lv.(map[string]any)
			s.Labels = append(s.Labels, samples.Label{Name: l["name"].(string), Value: l["value"].(string)})
		}
		for _, xv := range sm["samples"].([]any) {
			x := xv.(map[string]any)
			s.Samples = append(s.Samples, samples.Sample{TimestampMs: x["timestamp_ms"].(int64), Value: x["value"].(float64)})
		}
		if u, ok := sm["metadata"].(map[string]any); ok {
			md := u["io.tmaflow.Metadata"].(map[string]any)
			s.Metadata = &samples.Metadata{
				Type: samples.MetricType(md["type"].(string)), Unit: md["unit"].(string), Help: md["help"].(string),
			}
		}
		b.Series = append(b.Series, s)
	}
	return b
}

// comparable replaces values by their bits, so NaNs (Prometheus stale
// markers among them) compare by payload, and normalises empty slices.
type flatSeries struct {
	Labels   []samples.Label
	TS       []int64
	Bits     []uint64
	Metadata *samples.Metadata
}

func flatten(b *samples.Batch) (string, string, []flatSeries) {
	out := make([]flatSeries, 0, len(b.Series))
	for _, s := range b.Series {
		f := flatSeries{Labels: s.Labels, Metadata: s.Metadata}
		if len(f.Labels) == 0 {
			f.Labels = nil
		}
		for _, x := range s.Samples {
			f.TS = append(f.TS, x.TimestampMs)
			f.Bits = append(f.Bits, math.Float64bits(x.Value))
		}
		if f.Metadata != nil && !f.Metadata.Type.Valid() {
			m := *f.Metadata
			m.Type = samples.Unknown
			f.Metadata = &m
		}
		out = append(out, f)
	}
	return b.Tenant, b.Source, out
}

func requireSameBatch(tb testing.TB, want, got *samples.Batch) {
	tb.Helper()
	wt, ws, wf := flatten(want)
	gt, gs, gf := flatten(got)
	require.Equal(tb, wt, gt, "tenant")
	require.Equal(tb, ws, gs, "source")
	require.Equal(tb, wf, gf, "series")
}

func labels(kv ...string) []samples.Label {
	out := make([]samples.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, samples.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func manySeries(n int) []samples.Series {
	out := make([]samples.Series, n)
	for i := range out {
		out[i] = samples.Series{
			Labels:  labels("__name__", "m", "i", fmt.Sprint(i)),
			Samples: []samples.Sample{{TimestampMs: int64(i), Value: float64(i) / 3}},
		}
	}
	return out
}

// staleNaN is the bit pattern Prometheus uses as a staleness marker.
const staleNaN = 0x7ff0000000000002

func tableBatches() map[string]*samples.Batch {
	return map[string]*samples.Batch{
		"empty":             {Tenant: "", Source: ""},
		"no series":         {Tenant: "acme", Source: samples.SourceTMA},
		"empty series":      {Tenant: "t", Source: samples.SourceRule, Series: []samples.Series{{}}},
		"labels no samples": {Tenant: "t", Source: samples.SourceMQTT, Series: []samples.Series{{Labels: labels("__name__", "up")}}},
		"one series": {Tenant: "acme", Source: samples.SourceTMA, Series: []samples.Series{{
			Labels:  labels("__name__", "cpu_usage_percent", "resource", "web-1", "resource_id", "101098"),
			Samples: []samples.Sample{{TimestampMs: 1535971455000, Value: 20000.00001}, {TimestampMs: 1535971456000, Value: 0.5}},
		}}},
		"metadata every type": {Tenant: "acme", Source: samples.SourceOpenMetrics, Series: func() []samples.Series {
			var out []samples.Series
			for _, t := range []samples.MetricType{samples.Unknown, samples.Counter, samples.Gauge, samples.Histogram,
				samples.GaugeHistogram, samples.Summary, samples.Info, samples.StateSet} {
				out = append(out, samples.Series{
					Labels:   labels("__name__", strings.ToLower(string(t))),
					Samples:  []samples.Sample{{TimestampMs: 1, Value: 1}},
					Metadata: &samples.Metadata{Type: t, Unit: "seconds", Help: "help of " + string(t)},
				})
			}
			return out
		}()},
		"empty metadata": {Tenant: "t", Source: "s", Series: []samples.Series{{
			Labels: labels("__name__", "x"), Metadata: &samples.Metadata{Type: samples.Unknown},
		}}},
		"special values": {Tenant: "t", Source: samples.SourceRemoteWrite, Series: []samples.Series{{
			Labels: labels("__name__", "v"),
			Samples: []samples.Sample{
				{TimestampMs: math.MinInt64, Value: math.Inf(-1)},
				{TimestampMs: -1, Value: math.Copysign(0, -1)},
				{TimestampMs: 0, Value: math.Float64frombits(staleNaN)},
				{TimestampMs: 63, Value: math.NaN()},
				{TimestampMs: 64, Value: math.SmallestNonzeroFloat64},
				{TimestampMs: math.MaxInt64, Value: math.Inf(1)},
			},
		}}},
		"unicode and long strings": {Tenant: "mañana-ü", Source: "mqtt", Series: []samples.Series{{
			Labels:  labels("__name__", "temp_celsius", "site", strings.Repeat("é", 200), "topic", "plant/🌡/1"),
			Samples: []samples.Sample{{TimestampMs: 1700000000000, Value: 21.5}},
		}}},
		"200 series": {Tenant: "t", Source: "s", Series: manySeries(200)},
	}
}

func TestFingerprintMatchesSchema(t *testing.T) {
	c := newCodec(t)
	require.Equal(t, c.Rabin, samples.Fingerprint, "schemas/sample_batch.avsc changed: update samples.Fingerprint and the codec")
}

func TestEncodeDecodeTable(t *testing.T) {
	codec := newCodec(t)
	for name, b := range tableBatches() {
		t.Run(name, func(t *testing.T) {
			ours := samples.Encode(nil, b)
			require.Len(t, ours, samples.EncodedLen(b))

			// Byte-identical to goavro: both write each array as one block.
			theirs, err := codec.SingleFromNative(nil, toNative(b))
			require.NoError(t, err)
			require.Equal(t, theirs, ours)

			native, rest, err := codec.NativeFromSingle(ours)
			require.NoError(t, err)
			require.Empty(t, rest)
			requireSameBatch(t, b, fromNative(t, native))

			got, err := samples.Decode(theirs)
			require.NoError(t, err)
			requireSameBatch(t, b, got)

			// Encode appends: an existing prefix is kept.
			withPrefix := samples.Encode([]byte("key:"), b)
			require.Equal(t, append([]byte("key:"), ours...), withPrefix)
		})
	}
}

func TestEncodeUnknownTypeAsUnknown(t *testing.T) {
	for _, typ := range []samples.MetricType{"", "counter", "BOGUS"} {
		t.Run(string(typ), func(t *testing.T) {
			b := &samples.Batch{Series: []samples.Series{{Metadata: &samples.Metadata{Type: typ, Unit: "u"}}}}
			got, err := samples.Decode(samples.Encode(nil, b))
			require.NoError(t, err)
			require.Equal(t, samples.Unknown, got.Series[0].Metadata.Type)
			require.Equal(t, "u", got.Series[0].Metadata.Unit)
		})
	}
}

// Avro writers may split arrays into several blocks and prefix a block with
// its byte size (negative count); goavro never does, Java's writer can.
func TestDecodeMultiBlockArrays(t *testing.T) {
	var body []byte
	body = appendLong(body, 1) // tenant "t"
	body = append(body, 't')
	body = appendLong(body, 0)               // source ""
	body = appendLong(body, -1)              // series: block of 1 with byte size
	body = appendLong(body, 99)              // byte size (ignored)
	body = append(body, twoBlockLabels()...) // series[0].labels
	// samples: two blocks of one
	for i := range 2 {
		body = appendLong(body, 1)
		body = appendLong(body, int64(10+i))
		body = binary.LittleEndian.AppendUint64(body, math.Float64bits(float64(i)))
	}
	body = appendLong(body, 0)
	body = appendLong(body, 0) // metadata null
	body = appendLong(body, 1) // series: another block of 1
	body = append(body, 0, 0, 0)
	body = appendLong(body, 0) // end of series

	rec := append(header(samples.Fingerprint), body...)
	want := &samples.Batch{Tenant: "t", Series: []samples.Series{
		{Labels: labels("a", "b", "c", "d"), Samples: []samples.Sample{{TimestampMs: 10, Value: 0}, {TimestampMs: 11, Value: 1}}},
		{},
	}}
	got, err := samples.Decode(rec)
	require.NoError(t, err)
	requireSameBatch(t, want, got)

	native, rest, err := newCodec(t).NativeFromSingle(rec)
	require.NoError(t, err)
	require.Empty(t, rest)
	requireSameBatch(t, want, fromNative(t, native))
}

// requireEncodedLabelsKeyLabels decodes rec and checks that series whose
// labels have equal encodings have equal labels.
func requireEncodedLabelsKeyLabels(t *testing.T, rec []byte) {
	t.Helper()
	d := samples.Decoder{EncodeLabels: true}
	b, err := d.Decode(rec)
	require.NoError(t, err)
	enc := d.EncodedLabels()
	require.Len(t, enc, len(b.Series))
	for i := range enc {
		for j := range i {
			if enc[i] == enc[j] {
				require.Equal(t, b.Series[j].Labels, b.Series[i].Labels, "series %d and %d", j, i)
			}
		}
	}
}

func TestEncodedLabels(t *testing.T) {
	b := &samples.Batch{Tenant: "acme", Series: []samples.Series{
		{Labels: labels("__name__", "m", "a", "1")},
		{Labels: labels("__name__", "m", "a", "12")},
		{Labels: labels("__name__", "m", "a", "1"), Samples: []samples.Sample{{TimestampMs: 1, Value: 2}}},
		{Labels: labels("__name__", "m", "a1", "")},
		{},
	}}
	d := samples.Decoder{EncodeLabels: true}
	_, err := d.Decode(samples.Encode(nil, b))
	require.NoError(t, err)
	enc := d.EncodedLabels()
	require.Len(t, enc, 5)
	require.Equal(t, enc[0], enc[2], "same labels, other samples")
	require.NotEqual(t, enc[0], enc[1])
	require.NotEqual(t, enc[0], enc[3])
	require.Equal(t, "\x00", enc[4], "no labels: the empty array")

	// Decoding another record reuses the slice; the strings stay.
	first := enc[0]
	_, err = d.Decode(samples.Encode(nil, &samples.Batch{Series: []samples.Series{{Labels: labels("x", "y")}}}))
	require.NoError(t, err)
	require.Len(t, d.EncodedLabels(), 1)
	require.Equal(t, "\x04\x10__name__\x02m\x02a\x021\x00", first)

	var plain samples.Decoder
	_, err = plain.Decode(samples.Encode(nil, b))
	require.NoError(t, err)
	require.Empty(t, plain.EncodedLabels(), "only when asked")

	for name, b := range tableBatches() {
		t.Run(name, func(t *testing.T) { requireEncodedLabelsKeyLabels(t, samples.Encode(nil, b)) })
	}
}

func TestDecodeMultiBlockEncodedLabels(t *testing.T) {
	labelsBlock := twoBlockLabels()
	body := appendLong(nil, 0) // tenant ""
	body = appendLong(body, 0) // source ""
	body = appendLong(body, 1) // series: block of 1
	body = append(body, labelsBlock...)
	body = appendLong(body, 0) // no samples
	body = appendLong(body, 0) // metadata null
	body = appendLong(body, 0) // end of series
	d := samples.Decoder{EncodeLabels: true}
	b, err := d.Decode(append(header(samples.Fingerprint), body...))
	require.NoError(t, err)
	require.Equal(t, labels("a", "b", "c", "d"), b.Series[0].Labels)
	require.Equal(t, []string{string(labelsBlock)}, d.EncodedLabels())
}

// twoBlockLabels is the labels array a=b, c=d in a block of 1, then a
// block of 1 with its byte size.
func twoBlockLabels() []byte {
	b := appendLong(nil, 1)
	b = appendLong(b, 1)
	b = append(b, 'a')
	b = appendLong(b, 1)
	b = append(b, 'b')
	b = appendLong(b, -1)
	b = appendLong(b, 4)
	b = appendLong(b, 1)
	b = append(b, 'c')
	b = appendLong(b, 1)
	b = append(b, 'd')
	return appendLong(b, 0)
}

func header(fp uint64) []byte {
	return binary.LittleEndian.AppendUint64([]byte{0xC3, 0x01}, fp)
}

func appendLong(dst []byte, v int64) []byte {
	return binary.AppendUvarint(dst, uint64(v<<1)^uint64(v>>63))
}

func TestDecodeErrors(t *testing.T) {
	valid := samples.Encode(nil, tableBatches()["one series"])
	rec := func(body ...[]byte) []byte {
		return append(header(samples.Fingerprint), bytes.Join(body, nil)...)
	}
	long := func(v int64) []byte { return appendLong(nil, v) }
	str := func(s string) []byte { return append(long(int64(len(s))), s...) }

	for _, tc := range []struct {
		name   string
		data   []byte
		lim    samples.Limits
		kind   error
		inText string
	}{
		{"empty", nil, samples.Limits{}, samples.ErrNotSingleObject, ""},
		{"json", []byte(`{"tenant":"t"}`), samples.Limits{}, samples.ErrNotSingleObject, ""},
		{"short header", []byte{0xC3, 0x01, 1, 2}, samples.Limits{}, samples.ErrTruncated, "header"},
		{"other schema", append(header(0x1234), valid[samples.HeaderLen:]...), samples.Limits{}, samples.ErrFingerprint, "0x0000000000001234"},
		{"trailing bytes", append(bytes.Clone(valid), 0), samples.Limits{}, samples.ErrMalformed, "1 trailing bytes"},
		{"negative string length", rec(long(-1)), samples.Limits{}, samples.ErrMalformed, "tenant"},
		{"string longer than record", rec(long(1 << 40)), samples.Limits{}, samples.ErrTruncated, "tenant"},
		{"hostile series count", rec(str("t"), str("s"), long(1<<50)), samples.Limits{}, samples.ErrTruncated, "series block count"},
		{"hostile label count", rec(str("t"), str("s"), long(1), long(math.MaxInt64)), samples.Limits{}, samples.ErrTruncated, "series[0].labels block count"},
		{"min block count", rec(str("t"), str("s"), long(math.MinInt64)), samples.Limits{}, samples.ErrMalformed, "overflows"},
		{"negative block size", rec(str("t"), str("s"), long(-1), long(-5)), samples.Limits{}, samples.ErrMalformed, "negative block size"},
		{"varint over 64 bits", rec(bytes.Repeat([]byte{0xff}, 10), []byte{1}), samples.Limits{}, samples.ErrMalformed, "varint overflows"},
		{"bad union index", rec(str("t"), str("s"), long(1), long(0), long(0), long(2), long(0)), samples.Limits{}, samples.ErrMalformed, "series[0].metadata union index"},
		{"bad enum index", rec(str("t"), str("s"), long(1), long(0), long(0), long(1), long(8), str(""), str(""), long(0)), samples.Limits{}, samples.ErrMalformed, "series[0].metadata.type"},
		{"negative enum index", rec(str("t"), str("s"), long(1), long(0), long(0), long(1), long(-1), str(""), str(""), long(0)), samples.Limits{}, samples.ErrMalformed, "enum index -1"},
		{"truncated double", rec(str("t"), str("s"), long(1), long(0), long(1), long(5), []byte{1, 2, 3, 4, 5, 6, 7, 8}), samples.Limits{}, samples.ErrTruncated, "series[0].samples block count"},
		{"series limit", samples.Encode(nil, &samples.Batch{Series: manySeries(3)}), samples.Limits{Series: 2}, samples.ErrLimit, "more than 2 series"},
		{"labels limit", valid, samples.Limits{LabelsPerSeries: 2}, samples.ErrLimit, "series[0].labels"},
		{"samples limit", valid, samples.Limits{SamplesPerSeries: 1}, samples.ErrLimit, "series[0].samples"},
		{"string limit", valid, samples.Limits{StringLen: 10}, samples.ErrLimit, "series[0].labels[0].value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := samples.Decoder{Limits: tc.lim}
			b, err := d.Decode(tc.data)
			require.Nil(t, b)
			require.ErrorIs(t, err, tc.kind)
			require.Contains(t, err.Error(), tc.inText)
			require.True(t, strings.HasPrefix(err.Error(), "decode sample batch: "), err.Error())
		})
	}
}

// Every proper prefix of a record is a truncated record, never a panic or
// a different batch.
func TestDecodeEveryPrefixTruncated(t *testing.T) {
	for name, b := range tableBatches() {
		t.Run(name, func(t *testing.T) {
			full := samples.Encode(nil, b)
			for n := 2; n < len(full); n++ {
				_, err := samples.Decode(full[:n])
				require.ErrorIs(t, err, samples.ErrTruncated, "prefix of %d bytes", n)
			}
		})
	}
}

// A hostile count must fail before anything is sized by it.
func TestDecodeHostileCountsDoNotAllocate(t *testing.T) {
	data := append(header(samples.Fingerprint), 0, 0)
	data = appendLong(data, 1<<40)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := samples.Decode(data)
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, samples.ErrTruncated)
	// Nowhere near 2^40 series: the error message, plus whatever the
	// test runner's other goroutines allocated meanwhile (TotalAlloc is
	// process-wide, so a tight bound is flaky).
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))
}

func TestDecoderReuse(t *testing.T) {
	var d samples.Decoder
	big := tableBatches()["200 series"]
	small := tableBatches()["one series"]
	for _, b := range []*samples.Batch{big, small, tableBatches()["metadata every type"], big} {
		got, err := d.Decode(samples.Encode(nil, b))
		require.NoError(t, err)
		requireSameBatch(t, b, got)
	}
	got, err := d.Decode(samples.Encode(nil, big))
	require.NoError(t, err)
	// Appending to one series' labels must not clobber its neighbour's.
	got.Series[0].Labels = append(got.Series[0].Labels, samples.Label{Name: "x", Value: "y"})
	require.Equal(t, labels("__name__", "m", "i", "1"), got.Series[1].Labels)
}

func TestDecodedStringsOutliveInput(t *testing.T) {
	data := samples.Encode(nil, tableBatches()["one series"])
	got, err := samples.Decode(data)
	require.NoError(t, err)
	for i := range data {
		data[i] = 0
	}
	require.Equal(t, "cpu_usage_percent", got.Series[0].Labels[0].Value)
	require.Equal(t, "acme", got.Tenant)
}

func TestFreshDecodeAllocations(t *testing.T) {
	data := samples.Encode(nil, benchBatch())
	allocs := testing.AllocsPerRun(50, func() {
		_, err := samples.Decode(data)
		require.NoError(t, err)
	})
	// decoder+batch, series, labels, samples, metadata slabs and the string copy
	require.LessOrEqual(t, allocs, 6.0)

	var d samples.Decoder
	allocs = testing.AllocsPerRun(50, func() {
		_, err := d.Decode(data)
		require.NoError(t, err)
	})
	require.LessOrEqual(t, allocs, 1.0) // the string copy

	batch := benchBatch()
	dst := make([]byte, 0, 4096)
	allocs = testing.AllocsPerRun(50, func() { dst = samples.Encode(dst[:0], batch) })
	require.Zero(t, allocs)
}

// benchBatch is what the labeler publishes for one TMA message of 20
// descriptions with one observation each.
func benchBatch() *samples.Batch {
	b := &samples.Batch{Tenant: "acme", Source: samples.SourceTMA}
	for i := range 20 {
		b.Series = append(b.Series, samples.Series{
			Labels: labels(
				"__name__", fmt.Sprintf("description_%d_usage_percent", i),
				"probe", "k8s-probe",
				"resource", "worker-node-3",
				"resource_id", "101098",
				"site", "lisbon",
				"tenant", "acme",
			),
			Samples:  []samples.Sample{{TimestampMs: 1700000000000 + int64(i), Value: float64(i) * 1.5}},
			Metadata: &samples.Metadata{Type: samples.Gauge, Unit: "percent"},
		})
	}
	return b
}

func BenchmarkEncode(b *testing.B) {
	batch := benchBatch()
	dst := samples.Encode(nil, batch)
	b.SetBytes(int64(len(dst)))
	b.ReportAllocs()
	for b.Loop() {
		dst = samples.Encode(dst[:0], batch)
	}
}

func BenchmarkDecode(b *testing.B) {
	data := samples.Encode(nil, benchBatch())
	b.SetBytes(int64(len(data)))
	b.Run("decoder", func(b *testing.B) {
		b.ReportAllocs()
		var d samples.Decoder
		for b.Loop() {
			if _, err := d.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := samples.Decode(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The goavro figures are the baseline the hand-written codec is for.
func BenchmarkGoavro(b *testing.B) {
	codec := newCodec(b)
	native := toNative(benchBatch())
	data, err := codec.SingleFromNative(nil, native)
	require.NoError(b, err)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var dst []byte
		for b.Loop() {
			if dst, err = codec.SingleFromNative(dst[:0], native); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := codec.NativeFromSingle(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The decoder is stricter than goavro in exactly these ways; the fuzz
// target allows them and nothing else.
func stricterThanGoavro(err error) bool {
	return errors.Is(err, samples.ErrMalformed) &&
		(strings.Contains(err.Error(), "varint overflows") || strings.Contains(err.Error(), "negative block size"))
}

func TestMetricsKey(t *testing.T) {
	require.Equal(t, []byte("acme\x00resource_id=7"), samples.MetricsKey("acme", "resource_id=7"))
	// The separator keeps ("a", "bc") and ("ab", "c") apart.
	require.NotEqual(t, samples.MetricsKey("a", "bc"), samples.MetricsKey("ab", "c"))
}
