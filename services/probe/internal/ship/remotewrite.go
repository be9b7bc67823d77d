package ship

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strings"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// RemoteWriteConfig is the Prometheus remote_write 1.0 output.
type RemoteWriteConfig struct {
	HTTPConfig `yaml:",inline"`
}

// RemoteWrite sends Prometheus remote_write 1.0 requests: a
// snappy-compressed prometheus.WriteRequest, encoded here field by field
// (the generated prompb types would link gogo protobuf for one message).
type RemoteWrite struct {
	post *httpPoster
}

// NewRemoteWrite builds the output.
func NewRemoteWrite(cfg RemoteWriteConfig) (*RemoteWrite, error) {
	p, err := newHTTPPoster(cfg.HTTPConfig)
	if err != nil {
		return nil, err
	}
	return &RemoteWrite{post: p}, nil
}

var remoteWriteHeaders = map[string]string{
	"Content-Type":                      "application/x-protobuf",
	"Content-Encoding":                  "snappy",
	"User-Agent":                        "tmaflow-probe",
	"X-Prometheus-Remote-Write-Version": "0.1.0",
}

// Send posts the series.
func (o *RemoteWrite) Send(ctx context.Context, _ uint64, series []samples.Series) error {
	return o.post.post(ctx, snappy.Encode(nil, EncodeWriteRequest(series)), remoteWriteHeaders)
}

// WriteRequest field numbers (prometheus/prompb/remote.proto, types.proto).
const (
	fieldTimeseries  = 1 // WriteRequest.timeseries
	fieldLabels      = 1 // TimeSeries.labels
	fieldSamples     = 2 // TimeSeries.samples
	fieldLabelName   = 1
	fieldLabelValue  = 2
	fieldSampleValue = 1
	fieldSampleTime  = 2
)

// EncodeWriteRequest encodes series as a WriteRequest, merging the
// samples of one label set into one TimeSeries in time order (a receiver
// wants each series' samples ascending).
func EncodeWriteRequest(series []samples.Series) []byte {
	merged := mergeSeries(series)
	var out, ts, tmp []byte
	for _, s := range merged {
		ts = ts[:0]
		for _, l := range s.Labels {
			tmp = tmp[:0]
			tmp = protowire.AppendTag(tmp, fieldLabelName, protowire.BytesType)
			tmp = protowire.AppendString(tmp, l.Name)
			tmp = protowire.AppendTag(tmp, fieldLabelValue, protowire.BytesType)
			tmp = protowire.AppendString(tmp, l.Value)
			ts = protowire.AppendTag(ts, fieldLabels, protowire.BytesType)
			ts = protowire.AppendBytes(ts, tmp)
		}
		for _, smp := range s.Samples {
			tmp = tmp[:0]
			tmp = protowire.AppendTag(tmp, fieldSampleValue, protowire.Fixed64Type)
			tmp = protowire.AppendFixed64(tmp, math.Float64bits(smp.Value))
			tmp = protowire.AppendTag(tmp, fieldSampleTime, protowire.VarintType)
			tmp = protowire.AppendVarint(tmp, uint64(smp.TimestampMs))
			ts = protowire.AppendTag(ts, fieldSamples, protowire.BytesType)
			ts = protowire.AppendBytes(ts, tmp)
		}
		out = protowire.AppendTag(out, fieldTimeseries, protowire.BytesType)
		out = protowire.AppendBytes(out, ts)
	}
	return out
}

// mergeSeries groups samples by label set, each group's samples in time
// order, groups in first-seen order.
func mergeSeries(series []samples.Series) []samples.Series {
	idx := map[string]int{}
	var out []samples.Series
	var key strings.Builder
	for _, s := range series {
		key.Reset()
		for _, l := range s.Labels {
			key.WriteString(l.Name)
			key.WriteByte(0xff)
			key.WriteString(l.Value)
			key.WriteByte(0xff)
		}
		i, ok := idx[key.String()]
		if !ok {
			i = len(out)
			idx[key.String()] = i
			out = append(out, samples.Series{Labels: s.Labels})
		}
		out[i].Samples = append(out[i].Samples, s.Samples...)
	}
	for i := range out {
		slices.SortStableFunc(out[i].Samples, func(a, b samples.Sample) int { return cmp.Compare(a.TimestampMs, b.TimestampMs) })
	}
	return out
}
