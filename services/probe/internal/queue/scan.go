package queue

import (
	"bytes"
	"encoding/binary"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// scanned is one record found by scan.
type scanned struct {
	seq    uint64
	series []samples.Series
	end    int // offset just past the record
}

// magicBytes is the frame magic as it appears on disk.
var magicBytes = binary.BigEndian.AppendUint32(nil, magic)

// scan parses the next record of b at or after off. Readers only ever
// see whole frames of the segment being appended to (they read up to the
// size written), so anything that is not a valid record is corruption: a
// torn write before a crash or flipped bytes. It is skipped up to the
// next magic that starts a valid record; skipped counts the bytes passed
// over. ok is false when no record is left.
func scan(b []byte, off int) (rec scanned, skipped int, ok bool) {
	start := off
	for off < len(b) {
		if n, err := frameLen(b[off:]); err == nil && off+n <= len(b) {
			if seq, series, err := decodeFrame(b[off : off+n]); err == nil {
				return scanned{seq: seq, series: series, end: off + n}, off - start, true
			}
		}
		i := bytes.Index(b[off+1:], magicBytes)
		if i < 0 {
			return scanned{}, len(b) - start, false
		}
		off += 1 + i
	}
	return scanned{}, off - start, false
}
