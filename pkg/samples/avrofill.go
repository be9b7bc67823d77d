package samples

import (
	"encoding/binary"
	"math"
)

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
