package samples

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Fingerprint is the CRC-64-AVRO (Rabin) fingerprint of the Parsing
// Canonical Form of schemas/sample_batch.avsc. It is a constant rather than
// computed so encoding needs no schema at run time; a test proves it equals
// goavro's fingerprint of the embedded schema, so a schema change cannot go
// unnoticed.
const Fingerprint uint64 = 0x900370fc32bb9dac

// HeaderLen is the length of the single-object header: C3 01 and the
// 8-byte little-endian fingerprint.
const HeaderLen = 10

// Decoding errors; every error Decode returns wraps exactly one of them.
var (
	// ErrNotSingleObject: the record does not start with C3 01.
	ErrNotSingleObject = errors.New("not an avro single-object record")
	// ErrFingerprint: the record was written with another schema.
	ErrFingerprint = errors.New("unknown schema fingerprint")
	// ErrTruncated: the record ends inside a value.
	ErrTruncated = errors.New("truncated")
	// ErrMalformed: a value is impossible for the schema (varint longer
	// than 64 bits, negative length, bad union or enum index, trailing
	// bytes).
	ErrMalformed = errors.New("malformed")
	// ErrLimit: the record is well-formed but exceeds a Decoder limit.
	ErrLimit = errors.New("limit exceeded")
)

// Limits bound what one record may hold. Zero means no limit beyond the
// record's size: every element takes at least one byte, so a hostile count
// can never make the decoder allocate more than a small multiple of the
// record's length.
type Limits struct {
	Series           int // series per batch
	LabelsPerSeries  int
	SamplesPerSeries int
	StringLen        int // bytes of one label name/value, tenant, source, unit or help
}

// Decoder decodes records, reusing its memory: the *Batch it returns (and
// every slice in it) is valid only until the next call of Decode. Strings
// share one copy of the record, made per call, so they stay valid forever
// but keep the whole record alive while any of them is referenced.
// A Decoder is not safe for concurrent use.
type Decoder struct {
	Limits Limits
	// EncodeLabels makes Decode keep each series' labels as encoded in
	// the record, for EncodedLabels.
	EncodeLabels bool

	batch   Batch
	series  []Series
	labels  []Label
	samples []Sample
	meta    []Metadata
	// encodedLabels holds each series' labels as encoded in the record.
	encodedLabels []string
}

// Decode decodes one single-object record into a new Batch that the caller
// owns.
func Decode(data []byte) (*Batch, error) {
	var d Decoder
	b, err := d.Decode(data)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Decode decodes one single-object record. It scans the record twice: once
// to validate it and count its elements, then to fill slabs of exactly that
// size, so a batch costs a handful of allocations whatever its shape.
func (d *Decoder) Decode(data []byte) (*Batch, error) {
	if len(data) < 2 || data[0] != 0xC3 || data[1] != 0x01 {
		return nil, fmt.Errorf("decode sample batch: %w", ErrNotSingleObject)
	}
	if len(data) < HeaderLen {
		return nil, fmt.Errorf("decode sample batch: header: %w", ErrTruncated)
	}
	if fp := binary.LittleEndian.Uint64(data[2:HeaderLen]); fp != Fingerprint {
		return nil, fmt.Errorf("decode sample batch: %w %#016x (want %#016x, io.tmaflow.SampleBatch)", ErrFingerprint, fp, Fingerprint)
	}
	body := data[HeaderLen:]

	var c counts
	sc := scanner{buf: body, lim: d.Limits}
	if !sc.batch(&c) {
		return nil, fmt.Errorf("decode sample batch: %w", sc.err)
	}

	d.series = reuse(d.series, c.series)
	d.labels = reuse(d.labels, c.labels)
	d.samples = reuse(d.samples, c.samples)
	d.meta = reuse(d.meta, c.meta)
	d.encodedLabels = d.encodedLabels[:0]
	if d.EncodeLabels {
		d.encodedLabels = reuse(d.encodedLabels, c.series)
	}
	f := filler{buf: body, str: string(body), d: d}
	d.batch = Batch{}
	f.batch(&d.batch)
	return &d.batch, nil
}

// EncodedLabels returns, for each series of the batch the last Decode
// returned, its labels as encoded in the record (nil without
// EncodeLabels). Equal encodings decode to
// equal label lists, so an encoding keys a cache of what was made of the
// labels without comparing them one by one. The slice is valid until the
// next Decode; its strings share the record's copy, like the batch's.
func (d *Decoder) EncodedLabels() []string { return d.encodedLabels }

// reuse returns s resized to n, reallocating only when it is too small.
// Elements are overwritten by the filler, so old contents need no clearing
// except for pointers, which the filler also overwrites.
func reuse[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

type counts struct {
	series, labels, samples, meta int
}

// scanner validates a body and counts its elements without allocating.
// Its methods report failure by returning false after setting err; where
// they are is kept in plain fields, so the happy path builds no strings.
type scanner struct {
	buf []byte
	pos int
	lim Limits
	err error

	field  field
	series int // index of the series being scanned, -1 before the first
	index  int // index of the label or sample being scanned
}

// field names the part of the record being scanned, for errors.
type field uint8

const (
	fieldTenant field = iota
	fieldSource
	fieldSeriesBlock
	fieldLabelsBlock
	fieldLabelName
	fieldLabelValue
	fieldSamplesBlock
	fieldTimestamp
	fieldValue
	fieldMetadataUnion
	fieldMetadataType
	fieldMetadataUnit
	fieldMetadataHelp
	fieldEnd
)

func (s *scanner) where() string {
	switch s.field {
	case fieldTenant:
		return "tenant"
	case fieldSource:
		return "source"
	case fieldSeriesBlock:
		return "series block count"
	case fieldEnd:
		return "end"
	}
	var f string
	switch s.field {
	case fieldLabelsBlock:
		f = "labels block count"
	case fieldLabelName:
		f = fmt.Sprintf("labels[%d].name", s.index)
	case fieldLabelValue:
		f = fmt.Sprintf("labels[%d].value", s.index)
	case fieldSamplesBlock:
		f = "samples block count"
	case fieldTimestamp:
		f = fmt.Sprintf("samples[%d].timestamp_ms", s.index)
	case fieldValue:
		f = fmt.Sprintf("samples[%d].value", s.index)
	case fieldMetadataUnion:
		f = "metadata union index"
	case fieldMetadataType:
		f = "metadata.type"
	case fieldMetadataUnit:
		f = "metadata.unit"
	case fieldMetadataHelp:
		f = "metadata.help"
	}
	return fmt.Sprintf("series[%d].%s", s.series, f)
}

func (s *scanner) fail(kind error, detail string) bool {
	if detail != "" {
		s.err = fmt.Errorf("%s at byte %d: %w: %s", s.where(), HeaderLen+s.pos, kind, detail)
	} else {
		s.err = fmt.Errorf("%s at byte %d: %w", s.where(), HeaderLen+s.pos, kind)
	}
	return false
}

// long reads a zig-zag varint.
func (s *scanner) long() (int64, bool) {
	// Lengths, counts and indices nearly always take one byte.
	if p := s.pos; p < len(s.buf) {
		if b := s.buf[p]; b < 0x80 {
			s.pos = p + 1
			return int64(b>>1) ^ -int64(b&1), true
		}
	}
	return s.longSlow()
}

// longSlow rejects, unlike goavro, varints that do not fit 64 bits instead
// of silently dropping the high bits.
func (s *scanner) longSlow() (int64, bool) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if s.pos >= len(s.buf) {
			return 0, s.fail(ErrTruncated, "")
		}
		b := s.buf[s.pos]
		s.pos++
		if shift == 63 && b > 1 {
			return 0, s.fail(ErrMalformed, "varint overflows 64 bits")
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(v>>1) ^ -int64(v&1), true
		}
	}
}

func (s *scanner) str() bool {
	var n int64
	if p := s.pos; p < len(s.buf) && s.buf[p] < 0x80 { // s.long's fast path, inlined by hand
		n = int64(s.buf[p]>>1) ^ -int64(s.buf[p]&1)
		s.pos = p + 1
	} else {
		var ok bool
		if n, ok = s.longSlow(); !ok {
			return false
		}
	}
	if n < 0 || n > int64(len(s.buf)-s.pos) || (s.lim.StringLen > 0 && n > int64(s.lim.StringLen)) {
		return s.badString(n)
	}
	s.pos += int(n)
	return true
}

func (s *scanner) badString(n int64) bool {
	switch {
	case n < 0:
		return s.fail(ErrMalformed, fmt.Sprintf("negative string length %d", n))
	case s.lim.StringLen > 0 && n > int64(s.lim.StringLen):
		return s.fail(ErrLimit, fmt.Sprintf("string of %d bytes, limit %d", n, s.lim.StringLen))
	}
	return s.fail(ErrTruncated, fmt.Sprintf("string of %d bytes, %d left", n, len(s.buf)-s.pos))
}

// block reads an array block count. A negative count is followed by the
// block's byte size, which is read and ignored. minItem is the smallest
// encoding of one item, so a count that cannot fit in the remaining bytes
// fails here, before anything trusts it.
func (s *scanner) block(minItem int) (int, bool) {
	n, ok := s.long()
	if !ok {
		return 0, false
	}
	if n < 0 {
		if n == math.MinInt64 {
			return 0, s.fail(ErrMalformed, "block count overflows")
		}
		n = -n
		size, ok := s.long()
		if !ok {
			return 0, false
		}
		if size < 0 {
			return 0, s.fail(ErrMalformed, fmt.Sprintf("negative block size %d", size))
		}
	}
	if n > int64(len(s.buf)-s.pos)/int64(minItem) {
		return 0, s.fail(ErrTruncated, fmt.Sprintf("block of %d items, %d bytes left", n, len(s.buf)-s.pos))
	}
	return int(n), true
}

// Smallest encodings: a label is two empty strings, a sample a 1-byte long
// and an 8-byte double, a series two empty arrays and the null branch.
const (
	minLabel  = 2
	minSample = 9
	minSeries = 3
)

func (s *scanner) batch(c *counts) bool {
	s.series = -1
	s.field = fieldTenant
	if !s.str() {
		return false
	}
	s.field = fieldSource
	if !s.str() {
		return false
	}
	for {
		s.field = fieldSeriesBlock
		n, ok := s.block(minSeries)
		if !ok {
			return false
		}
		if n == 0 {
			break
		}
		if s.lim.Series > 0 && c.series+n > s.lim.Series {
			return s.fail(ErrLimit, fmt.Sprintf("more than %d series", s.lim.Series))
		}
		for range n {
			s.series = c.series
			if !s.oneSeries(c) {
				return false
			}
			c.series++
		}
	}
	if s.pos != len(s.buf) {
		s.field = fieldEnd
		return s.fail(ErrMalformed, fmt.Sprintf("%d trailing bytes", len(s.buf)-s.pos))
	}
	return true
}

func (s *scanner) oneSeries(c *counts) bool {
	labels := 0
	for {
		s.field = fieldLabelsBlock
		n, ok := s.block(minLabel)
		if !ok {
			return false
		}
		if n == 0 {
			break
		}
		if s.lim.LabelsPerSeries > 0 && labels+n > s.lim.LabelsPerSeries {
			return s.fail(ErrLimit, fmt.Sprintf("more than %d labels", s.lim.LabelsPerSeries))
		}
		for range n {
			s.index = labels
			s.field = fieldLabelName
			if !s.str() {
				return false
			}
			s.field = fieldLabelValue
			if !s.str() {
				return false
			}
			labels++
		}
	}
	c.labels += labels

	samples := 0
	for {
		s.field = fieldSamplesBlock
		n, ok := s.block(minSample)
		if !ok {
			return false
		}
		if n == 0 {
			break
		}
		if s.lim.SamplesPerSeries > 0 && samples+n > s.lim.SamplesPerSeries {
			return s.fail(ErrLimit, fmt.Sprintf("more than %d samples", s.lim.SamplesPerSeries))
		}
		for range n {
			s.index = samples
			s.field = fieldTimestamp
			if _, ok := s.long(); !ok {
				return false
			}
			s.field = fieldValue
			if len(s.buf)-s.pos < 8 {
				return s.fail(ErrTruncated, "")
			}
			s.pos += 8
			samples++
		}
	}
	c.samples += samples

	s.field = fieldMetadataUnion
	u, ok := s.long()
	if !ok {
		return false
	}
	switch u {
	case 0:
		return true
	case 1:
	default:
		return s.fail(ErrMalformed, fmt.Sprintf("union index %d out of range", u))
	}
	s.field = fieldMetadataType
	t, ok := s.long()
	if !ok {
		return false
	}
	if _, ok := metricTypeAt(t); !ok {
		return s.fail(ErrMalformed, fmt.Sprintf("enum index %d out of range", t))
	}
	s.field = fieldMetadataUnit
	if !s.str() {
		return false
	}
	s.field = fieldMetadataHelp
	if !s.str() {
		return false
	}
	c.meta++
	return true
}

// filler decodes a body the scanner accepted into the Decoder's slabs. It
// repeats no checks: the scanner proved every read in bounds.
type filler struct {
	buf []byte
	pos int
	str string // one copy of buf: every decoded string is a substring
	d   *Decoder

	series, labels, samples, meta int // next free slab element
}

func (f *filler) long() int64 {
	if b := f.buf[f.pos]; b < 0x80 {
		f.pos++
		return int64(b>>1) ^ -int64(b&1)
	}
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b := f.buf[f.pos]
		f.pos++
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return int64(v>>1) ^ -int64(v&1)
		}
	}
}

func (f *filler) string() string {
	n := int(f.long())
	s := f.str[f.pos : f.pos+n]
	f.pos += n
	return s
}

func (f *filler) block() int {
	n := f.long()
	if n < 0 {
		n = -n
		f.long()
	}
	return int(n)
}

func (f *filler) batch(b *Batch) {
	b.Tenant = f.string()
	b.Source = f.string()
	start := f.series
	for n := f.block(); n != 0; n = f.block() {
		for range n {
			f.oneSeries(&f.d.series[f.series])
			f.series++
		}
	}
	if f.series > start {
		b.Series = f.d.series[start:f.series:f.series]
	}
}

func (f *filler) oneSeries(s *Series) {
	*s = Series{}
	start, pos := f.labels, f.pos
	for n := f.block(); n != 0; n = f.block() {
		for range n {
			l := &f.d.labels[f.labels]
			l.Name = f.string()
			l.Value = f.string()
			f.labels++
		}
	}
	if f.d.EncodeLabels {
		f.d.encodedLabels[f.series] = f.str[pos:f.pos]
	}
	if f.labels > start {
		// Full slice expressions: appending to one series' labels must
		// not overwrite the next series'.
		s.Labels = f.d.labels[start:f.labels:f.labels]
	}
	start = f.samples
	for n := f.block(); n != 0; n = f.block() {
		for range n {
			sm := &f.d.samples[f.samples]
			sm.TimestampMs = f.long()
			sm.Value = math.Float64frombits(binary.LittleEndian.Uint64(f.buf[f.pos:]))
			f.pos += 8
			f.samples++
		}
	}
	if f.samples > start {
		s.Samples = f.d.samples[start:f.samples:f.samples]
	}
	if f.long() == 1 {
		m := &f.d.meta[f.meta]
		f.meta++
		m.Type, _ = metricTypeAt(f.long())
		m.Unit = f.string()
		m.Help = f.string()
		s.Metadata = m
	}
}

// metricTypeAt maps an enum index of io.tmaflow.MetricType to its symbol.
func metricTypeAt(i int64) (MetricType, bool) {
	switch i {
	case 0:
		return Unknown, true
	case 1:
		return Counter, true
	case 2:
		return Gauge, true
	case 3:
		return Histogram, true
	case 4:
		return GaugeHistogram, true
	case 5:
		return Summary, true
	case 6:
		return Info, true
	case 7:
		return StateSet, true
	}
	return "", false
}

// metricTypeIndex is the inverse of metricTypeAt. Types outside the enum
// (including "") encode as UNKNOWN, the Prometheus reading of a type it
// does not know, so Encode needs no error path.
func metricTypeIndex(t MetricType) int64 {
	switch t {
	case Counter:
		return 1
	case Gauge:
		return 2
	case Histogram:
		return 3
	case GaugeHistogram:
		return 4
	case Summary:
		return 5
	case Info:
		return 6
	case StateSet:
		return 7
	}
	return 0
}

// Valid reports whether t is a symbol of the Avro enum.
func (t MetricType) Valid() bool {
	return t == Unknown || metricTypeIndex(t) != 0
}

// Encode appends the single-object encoding of b to dst and returns the
// extended slice. It grows dst once, to the exact size.
func Encode(dst []byte, b *Batch) []byte {
	dst = slices.Grow(dst, EncodedLen(b))
	dst = append(dst, 0xC3, 0x01)
	dst = binary.LittleEndian.AppendUint64(dst, Fingerprint)
	dst = appendString(dst, b.Tenant)
	dst = appendString(dst, b.Source)
	if len(b.Series) > 0 {
		dst = appendLong(dst, int64(len(b.Series)))
		for i := range b.Series {
			dst = appendSeries(dst, &b.Series[i])
		}
	}
	return append(dst, 0)
}

func appendSeries(dst []byte, s *Series) []byte {
	if len(s.Labels) > 0 {
		dst = appendLong(dst, int64(len(s.Labels)))
		for _, l := range s.Labels {
			dst = appendString(dst, l.Name)
			dst = appendString(dst, l.Value)
		}
	}
	dst = append(dst, 0)
	if len(s.Samples) > 0 {
		dst = appendLong(dst, int64(len(s.Samples)))
		for _, sm := range s.Samples {
			dst = appendLong(dst, sm.TimestampMs)
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(sm.Value))
		}
	}
	dst = append(dst, 0)
	if s.Metadata == nil {
		return append(dst, 0)
	}
	dst = append(dst, 2) // zig-zag 1: the Metadata branch
	dst = appendLong(dst, metricTypeIndex(s.Metadata.Type))
	dst = appendString(dst, s.Metadata.Unit)
	return appendString(dst, s.Metadata.Help)
}

// EncodedLen is the exact length of Encode's output for b.
func EncodedLen(b *Batch) int {
	n := HeaderLen + stringLen(b.Tenant) + stringLen(b.Source) + 1
	if len(b.Series) > 0 {
		n += longLen(int64(len(b.Series)))
	}
	for i := range b.Series {
		s := &b.Series[i]
		n += 3
		if len(s.Labels) > 0 {
			n += longLen(int64(len(s.Labels)))
			for _, l := range s.Labels {
				n += stringLen(l.Name) + stringLen(l.Value)
			}
		}
		if len(s.Samples) > 0 {
			n += longLen(int64(len(s.Samples)))
			for _, sm := range s.Samples {
				n += longLen(sm.TimestampMs) + 8
			}
		}
		if s.Metadata != nil {
			n += 1 + stringLen(s.Metadata.Unit) + stringLen(s.Metadata.Help)
		}
	}
	return n
}

func appendLong(dst []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		dst = append(dst, byte(u)|0x80)
		u >>= 7
	}
	return append(dst, byte(u))
}

func longLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

func appendString(dst []byte, s string) []byte {
	dst = appendLong(dst, int64(len(s)))
	return append(dst, s...)
}

func stringLen(s string) int {
	return longLen(int64(len(s))) + len(s)
}
