package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/golang/snappy"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// A record is one collection's series, framed as
//
//	magic uint32 | length uint32 | crc32c(payload) uint32 | payload
//	payload = seq uint64 | snappy(body)
//
// The magic lets a reader find the next record after a corrupt one; the
// checksum tells a torn or flipped record from a good one.
const (
	magic      = 0x50524231 // "PRB1"
	headerSize = 12
	// maxPayload bounds a record so that a corrupt length cannot make a
	// reader allocate gigabytes.
	maxPayload = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a frame that is not a valid record.
var errCorrupt = errors.New("corrupt record")

// encodeRecord frames seq and series into dst.
func encodeRecord(dst []byte, seq uint64, series []samples.Series) []byte {
	body := encodeBody(nil, series)
	payload := make([]byte, 8, 8+snappy.MaxEncodedLen(len(body)))
	binary.BigEndian.PutUint64(payload, seq)
	payload = append(payload, snappy.Encode(payload[8:cap(payload)], body)...)
	dst = binary.BigEndian.AppendUint32(dst, magic)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

func encodeBody(dst []byte, series []samples.Series) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(series)))
	for _, s := range series {
		dst = binary.AppendUvarint(dst, uint64(len(s.Labels)))
		for _, l := range s.Labels {
			dst = appendString(dst, l.Name)
			dst = appendString(dst, l.Value)
		}
		dst = binary.AppendUvarint(dst, uint64(len(s.Samples)))
		for _, smp := range s.Samples {
			dst = binary.AppendVarint(dst, smp.TimestampMs)
			dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(smp.Value))
		}
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// frameLen reads a frame header: the whole frame's length, or errCorrupt.
func frameLen(h []byte) (int, error) {
	if len(h) < headerSize || binary.BigEndian.Uint32(h) != magic {
		return 0, errCorrupt
	}
	n := binary.BigEndian.Uint32(h[4:])
	if n < 8 || n > maxPayload {
		return 0, errCorrupt
	}
	return headerSize + int(n), nil
}

// decodeFrame checks and decodes one whole frame.
func decodeFrame(frame []byte) (seq uint64, series []samples.Series, err error) {
	n, err := frameLen(frame)
	if err != nil {
		return 0, nil, err
	}
	if len(frame) != n {
		return 0, nil, errCorrupt
	}
	payload := frame[headerSize:]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(frame[8:]) {
		return 0, nil, fmt.Errorf("%w: checksum mismatch", errCorrupt)
	}
	body, err := snappy.Decode(nil, payload[8:])
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	series, err = decodeBody(body)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %w", errCorrupt, err)
	}
	return binary.BigEndian.Uint64(payload), series, nil
}

// bodyReader reads a record body; the first error sticks.
type bodyReader struct {
	b   []byte
	err error
}

func (r *bodyReader) uvarint(limit uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > limit {
		r.err = errors.New("bad length")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *bodyReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("bad timestamp")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *bodyReader) str() string {
	n := r.uvarint(uint64(len(r.b)))
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *bodyReader) float() float64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.err = errors.New("short value")
		return 0
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(r.b))
	r.b = r.b[8:]
	return v
}

// decodeBody decodes a record body. Counts are bounded by the bytes left
// (every element takes at least one byte), so a corrupt count cannot make
// it allocate more than the body's size allows.
func decodeBody(b []byte) ([]samples.Series, error) {
	r := &bodyReader{b: b}
	ns := r.uvarint(uint64(len(b)))
	series := make([]samples.Series, 0, ns)
	for i := uint64(0); i < ns && r.err == nil; i++ {
		nl := r.uvarint(uint64(len(r.b)) / 2)
		s := samples.Series{Labels: make([]samples.Label, 0, nl)}
		for j := uint64(0); j < nl && r.err == nil; j++ {
			s.Labels = append(s.Labels, samples.Label{Name: r.str(), Value: r.str()})
		}
		nsmp := r.uvarint(uint64(len(r.b)) / 9)
		s.Samples = make([]samples.Sample, 0, nsmp)
		for j := uint64(0); j < nsmp && r.err == nil; j++ {
			s.Samples = append(s.Samples, samples.Sample{TimestampMs: r.varint(), Value: r.float()})
		}
		series = append(series, s)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	return series, r.err
}

// countSamples is the number of samples in series.
func countSamples(series []samples.Series) int {
	n := 0
	for _, s := range series {
		n += len(s.Samples)
	}
	return n
}
