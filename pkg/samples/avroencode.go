package samples

import (
	"encoding/binary"
	"math"
	"slices"
)

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
