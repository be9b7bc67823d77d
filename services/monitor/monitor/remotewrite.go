package monitor

import (
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/tmaflow/tmaflow/pkg/ingest"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// rwVersion is the remote write protocol of a request.
type rwVersion int

const (
	rwV1 rwVersion = 1 // prometheus.WriteRequest
	rwV2 rwVersion = 2 // io.prometheus.write.v2.Request
)

// The protobuf messages named by the proto parameter of the content type.
const (
	protoV1 = "prometheus.WriteRequest"
	protoV2 = "io.prometheus.write.v2.Request"
)

// Response headers of remote write 2.0: what the receiver stored.
const (
	headerSamplesWritten    = "X-Prometheus-Remote-Write-Samples-Written"
	headerHistogramsWritten = "X-Prometheus-Remote-Write-Histograms-Written"
	headerExemplarsWritten  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// errDecodedTooLarge is a body whose snappy header announces more than
// max-decoded-bytes.
var errDecodedTooLarge = errors.New("decompressed body too large")

// remoteWriteVersion reads the protocol from the Content-Type: 1.0 when
// absent or application/x-protobuf without proto or with
// proto=prometheus.WriteRequest, 2.0 with proto=io.prometheus.write.v2.Request.
func remoteWriteVersion(contentType string) (rwVersion, error) {
	if contentType == "" {
		return rwV1, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("content type %q: %w", contentType, err)
	}
	if mt != "application/x-protobuf" {
		return 0, fmt.Errorf("content type %q: want application/x-protobuf", contentType)
	}
	switch params["proto"] {
	case "", protoV1:
		return rwV1, nil
	case protoV2:
		return rwV2, nil
	}
	return 0, fmt.Errorf("content type %q: proto %q is neither %s (1.0) nor %s (2.0)", contentType, params["proto"], protoV1, protoV2)
}

// checkRemoteWriteEncoding accepts snappy, the only encoding of remote
// write (absent means snappy, as Prometheus's receiver takes it).
func checkRemoteWriteEncoding(enc string) error {
	if enc == "" || strings.EqualFold(enc, "snappy") {
		return nil
	}
	return fmt.Errorf("content encoding %q: remote write bodies are snappy-compressed (Content-Encoding: snappy)", enc)
}

// writeRequest is a decoded remote write request as sample batch series.
type writeRequest struct {
	series []samples.Series
	// families is a 1.0 request's metadata by metric family name.
	families  map[string]*samples.Metadata
	samples   int
	exemplars int // received and not stored: the batch has no exemplars
}

// decodeRemoteWrite decompresses and decodes a remote write body and
// checks every series. Any problem refuses the whole request, naming the
// part that failed; nothing is dropped silently.
func decodeRemoteWrite(v rwVersion, compressed []byte, maxDecoded int64) (*writeRequest, error) {
	n, err := snappy.DecodedLen(compressed)
	if err != nil {
		return nil, fmt.Errorf("decode remote write: snappy: %w", err)
	}
	if int64(n) > maxDecoded {
		return nil, fmt.Errorf("decode remote write: snappy: %d bytes: %w", n, errDecodedTooLarge)
	}
	bp := decodedBuf(n)
	defer putDecodedBuf(bp)
	raw, err := snappy.Decode(*bp, compressed)
	if err != nil {
		return nil, fmt.Errorf("decode remote write: snappy: %w", err)
	}
	// The decoded strings are copies (gogo's Unmarshal copies strings and
	// unknown fields): nothing refers to raw afterwards, so it is reused.
	if v == rwV2 {
		var req writev2.Request
		other := func() bool { return len(req.Timeseries) == 0 && len(req.XXX_unrecognized) > 0 }
		if err := unmarshal(&req, raw, protoV2, other, "1.0 body needs Content-Type application/x-protobuf without proto="+protoV2); err != nil {
			return nil, err
		}
		return fromV2(&req)
	}
	var req prompb.WriteRequest
	other := func() bool { return len(req.Timeseries) == 0 && len(req.XXX_unrecognized) > 0 }
	if err := unmarshal(&req, raw, protoV1, other, "2.0 body needs Content-Type application/x-protobuf;proto="+protoV2); err != nil {
		return nil, err
	}
	return fromV1(&req)
}

// unmarshal decodes raw into m, refusing a body of the other protocol
// version (otherVersion, asked after decoding): it decodes to nothing but
// unknown fields and would store nothing.
func unmarshal(m interface{ Unmarshal([]byte) error }, raw []byte, name string, otherVersion func() bool, hint string) error {
	if err := m.Unmarshal(raw); err != nil {
		return fmt.Errorf("decode remote write: protobuf %s: %w", name, err)
	}
	if otherVersion() {
		return fmt.Errorf("decode remote write: protobuf %s: %w; a remote write %s", name, errOtherVersion, hint)
	}
	return nil
}

// Decompressed bodies up to maxPooledDecoded are reused across requests.
const maxPooledDecoded = 4 << 20

var decodedBufs sync.Pool // *[]byte

// decodedBuf returns a buffer of length n.
func decodedBuf(n int) *[]byte {
	if bp, ok := decodedBufs.Get().(*[]byte); ok && cap(*bp) >= n {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n)
	return &b
}

func putDecodedBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledDecoded {
		decodedBufs.Put(bp)
	}
}

// errOtherVersion is a body of the other protocol version: it decodes as
// an empty message with only unknown fields, which would store nothing.
var errOtherVersion = errors.New("no timeseries, only unknown fields")

// errHistograms refuses native histograms, which the sample batch cannot
// carry yet.
var errHistograms = errors.New("native histograms are not supported yet: nothing was accepted; send classic histograms (remote_write send_native_histograms: false)")

// fromV1 converts a 1.0 request, metadata joined by metric family name.
func fromV1(req *prompb.WriteRequest) (*writeRequest, error) {
	var meta map[string]*samples.Metadata
	if len(req.Metadata) > 0 {
		meta = make(map[string]*samples.Metadata, len(req.Metadata))
		for i := range req.Metadata {
			m := &req.Metadata[i]
			meta[m.MetricFamilyName] = &samples.Metadata{Type: ingest.MetricType(int32(m.Type)), Unit: m.Unit, Help: m.Help}
		}
	}
	nl, ns := 0, 0
	for i := range req.Timeseries {
		nl += len(req.Timeseries[i].Labels)
		ns += len(req.Timeseries[i].Samples)
	}
	b := newSeriesBuilder(len(req.Timeseries), nl, ns)
	b.out.families = meta
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		for _, l := range ts.Labels {
			b.label(l.Name, l.Value)
		}
		ls, err := b.labels(i, len(ts.Histograms))
		if err != nil {
			return nil, err
		}
		b.out.exemplars += len(ts.Exemplars)
		if len(ts.Samples) == 0 {
			continue // 1.0 allows a series without samples; nothing to store
		}
		for _, smp := range ts.Samples {
			b.sample(smp.Timestamp, smp.Value)
		}
		b.series(ls, ingest.FamilyMetadata(meta, ingest.MetricName(ls)))
	}
	return b.out, nil
}

// fromV2 converts a 2.0 request: labels, help and unit from the symbol
// table, metadata per series.
func fromV2(req *writev2.Request) (*writeRequest, error) {
	syms := req.Symbols
	if len(syms) > 0 && syms[0] != "" {
		return nil, errors.New("decode remote write: symbols[0] must be the empty string")
	}
	symbol := func(ref uint32) (string, error) {
		if int(ref) >= len(syms) {
			return "", fmt.Errorf("symbol reference %d out of the %d symbols", ref, len(syms))
		}
		return syms[ref], nil
	}
	nl, ns := 0, 0
	for i := range req.Timeseries {
		nl += len(req.Timeseries[i].LabelsRefs) / 2
		ns += len(req.Timeseries[i].Samples)
	}
	b := newSeriesBuilder(len(req.Timeseries), nl, ns)
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		refs := ts.LabelsRefs
		if len(refs)%2 != 0 {
			return nil, fmt.Errorf("decode remote write: timeseries[%d]: labels_refs has an odd length %d", i, len(refs))
		}
		for j := 0; j < len(refs); j += 2 {
			name, err := symbol(refs[j])
			if err != nil {
				return nil, fmt.Errorf("decode remote write: timeseries[%d] labels_refs[%d]: %w", i, j, err)
			}
			value, err := symbol(refs[j+1])
			if err != nil {
				return nil, fmt.Errorf("decode remote write: timeseries[%d] labels_refs[%d]: %w", i, j+1, err)
			}
			b.label(name, value)
		}
		ls, err := b.labels(i, len(ts.Histograms))
		if err != nil {
			return nil, err
		}
		if len(ts.Samples) == 0 {
			return nil, fmt.Errorf("decode remote write: timeseries[%d] %s: %w", i, ingest.ShowLabels(ls), errNoSamples)
		}
		meta, err := v2Metadata(&ts.Metadata, symbol)
		if err != nil {
			return nil, fmt.Errorf("decode remote write: timeseries[%d] %s: metadata: %w", i, ingest.ShowLabels(ls), err)
		}
		b.out.exemplars += len(ts.Exemplars)
		for _, smp := range ts.Samples {
			b.sample(smp.Timestamp, smp.Value)
		}
		b.series(ls, meta)
	}
	return b.out, nil
}

func v2Metadata(m *writev2.Metadata, symbol func(uint32) (string, error)) (*samples.Metadata, error) {
	help, err := symbol(m.HelpRef)
	if err != nil {
		return nil, fmt.Errorf("help_ref: %w", err)
	}
	unit, err := symbol(m.UnitRef)
	if err != nil {
		return nil, fmt.Errorf("unit_ref: %w", err)
	}
	if m.Type == writev2.Metadata_METRIC_TYPE_UNSPECIFIED && help == "" && unit == "" {
		return nil, nil
	}
	return &samples.Metadata{Type: ingest.MetricType(int32(m.Type)), Unit: unit, Help: help}, nil
}

// seriesBuilder converts the series of a request into batch series whose
// labels and samples share one allocation each.
type seriesBuilder struct {
	lbuf       []samples.Label
	sbuf       []samples.Sample
	loff, soff int // where the series being built starts in lbuf, sbuf
	out        *writeRequest
}

func newSeriesBuilder(series, labels, smps int) *seriesBuilder {
	return &seriesBuilder{
		lbuf: make([]samples.Label, 0, labels),
		sbuf: make([]samples.Sample, 0, smps),
		out:  &writeRequest{series: make([]samples.Series, 0, series)},
	}
}

// label adds a label to the series being built.
func (b *seriesBuilder) label(name, value string) {
	b.lbuf = append(b.lbuf, samples.Label{Name: name, Value: value})
}

// labels ends the labels of timeseries[i] and checks them; a series with
// native histograms is refused.
func (b *seriesBuilder) labels(i, histograms int) ([]samples.Label, error) {
	ls := b.lbuf[b.loff:len(b.lbuf):len(b.lbuf)]
	b.loff = len(b.lbuf)
	if err := ingest.CheckLabels(ls); err != nil {
		return nil, fmt.Errorf("decode remote write: timeseries[%d] %s: %w", i, ingest.ShowLabels(ls), err)
	}
	if histograms > 0 {
		return nil, fmt.Errorf("decode remote write: timeseries[%d] %s: %w", i, ingest.ShowLabels(ls), errHistograms)
	}
	return ls, nil
}

func (b *seriesBuilder) sample(ts int64, v float64) {
	b.sbuf = append(b.sbuf, samples.Sample{TimestampMs: ts, Value: v})
}

// series adds the series with the samples added since the last one, in
// time order (senders keep the order; the sort is for those that do not).
func (b *seriesBuilder) series(ls []samples.Label, meta *samples.Metadata) {
	ss := b.sbuf[b.soff:len(b.sbuf):len(b.sbuf)]
	b.soff = len(b.sbuf)
	if !slices.IsSortedFunc(ss, ingest.CmpSampleTime) {
		slices.SortStableFunc(ss, ingest.CmpSampleTime)
	}
	b.out.series = append(b.out.series, samples.Series{Labels: ingest.DropEmpty(ls), Samples: ss, Metadata: meta})
	b.out.samples += len(ss)
}
