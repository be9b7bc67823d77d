package samples

import (
	"encoding/binary"
	"errors"
	"fmt"
)

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
