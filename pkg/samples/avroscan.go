package samples

import (
	"fmt"
	"math"
)

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
