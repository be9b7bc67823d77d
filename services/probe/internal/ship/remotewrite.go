package ship

import (
	"cmp"
	"context"
	"hash/maphash"
	"math"
	"slices"

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
// wants each series' samples ascending). Sizes are computed first so that
// every byte is written once.
func EncodeWriteRequest(series []samples.Series) []byte {
	merged := mergeSeries(series)
	size := 0
	for _, s := range merged {
		n := timeSeriesSize(s)
		size += protowire.SizeTag(fieldTimeseries) + protowire.SizeBytes(n)
	}
	out := make([]byte, 0, size)
	for _, s := range merged {
		out = protowire.AppendTag(out, fieldTimeseries, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(timeSeriesSize(s)))
		for _, l := range s.Labels {
			out = protowire.AppendTag(out, fieldLabels, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(labelSize(l)))
			out = protowire.AppendTag(out, fieldLabelName, protowire.BytesType)
			out = protowire.AppendString(out, l.Name)
			out = protowire.AppendTag(out, fieldLabelValue, protowire.BytesType)
			out = protowire.AppendString(out, l.Value)
		}
		for _, smp := range s.Samples {
			out = protowire.AppendTag(out, fieldSamples, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(sampleSize(smp)))
			out = protowire.AppendTag(out, fieldSampleValue, protowire.Fixed64Type)
			out = protowire.AppendFixed64(out, math.Float64bits(smp.Value))
			out = protowire.AppendTag(out, fieldSampleTime, protowire.VarintType)
			out = protowire.AppendVarint(out, uint64(smp.TimestampMs))
		}
	}
	return out
}

func labelSize(l samples.Label) int {
	return protowire.SizeTag(fieldLabelName) + protowire.SizeBytes(len(l.Name)) +
		protowire.SizeTag(fieldLabelValue) + protowire.SizeBytes(len(l.Value))
}

func sampleSize(s samples.Sample) int {
	return protowire.SizeTag(fieldSampleValue) + protowire.SizeFixed64() +
		protowire.SizeTag(fieldSampleTime) + protowire.SizeVarint(uint64(s.TimestampMs))
}

func timeSeriesSize(s samples.Series) int {
	n := 0
	for _, l := range s.Labels {
		n += protowire.SizeTag(fieldLabels) + protowire.SizeBytes(labelSize(l))
	}
	for _, smp := range s.Samples {
		n += protowire.SizeTag(fieldSamples) + protowire.SizeBytes(sampleSize(smp))
	}
	return n
}

// mergeSeries groups samples by label set, each group's samples in time
// order, groups in first-seen order. Label sets are told apart by a hash
// and compared on a match, so nothing is allocated per series.
func mergeSeries(series []samples.Series) []samples.Series {
	seed := maphash.MakeSeed()
	idx := make(map[uint64][]int, len(series))
	out := make([]samples.Series, 0, len(series))
	for _, s := range series {
		var h maphash.Hash
		h.SetSeed(seed)
		for _, l := range s.Labels {
			h.WriteString(l.Name)
			h.WriteByte(0xff)
			h.WriteString(l.Value)
			h.WriteByte(0xff)
		}
		k := h.Sum64()
		i := -1
		for _, j := range idx[k] {
			if slices.Equal(out[j].Labels, s.Labels) {
				i = j
				break
			}
		}
		if i < 0 {
			i = len(out)
			idx[k] = append(idx[k], i)
			out = append(out, samples.Series{Labels: s.Labels, Samples: s.Samples})
			continue
		}
		out[i].Samples = append(slices.Clip(out[i].Samples), s.Samples...)
	}
	for i := range out {
		if !slices.IsSortedFunc(out[i].Samples, cmpSample) {
			out[i].Samples = slices.Clone(out[i].Samples)
			slices.SortStableFunc(out[i].Samples, cmpSample)
		}
	}
	return out
}

func cmpSample(a, b samples.Sample) int { return cmp.Compare(a.TimestampMs, b.TimestampMs) }
