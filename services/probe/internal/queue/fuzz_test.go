package queue

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzScan: any bytes scan without panicking, and every record found
// encodes back to a frame that scans to the same record.
func FuzzScan(f *testing.F) {
	f.Add(encodeRecord(nil, 1, collection(2, 5)))
	f.Add(append(encodeRecord(nil, 1, collection(1, 5)), encodeRecord(nil, 2, collection(3, 6))[:20]...))
	f.Add([]byte("PRB1\x00\x00\x00\x08\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for off := 0; off < len(b); {
			rec, skipped, ok := scan(b, off)
			require.LessOrEqual(t, off+skipped, len(b))
			if !ok {
				return
			}
			require.Greater(t, rec.end, off)
			again, _, ok := scan(encodeRecord(nil, rec.seq, rec.series), 0)
			require.True(t, ok)
			require.Equal(t, rec.seq, again.seq)
			require.Equal(t, len(rec.series), len(again.series))
			off = rec.end
		}
	})
}
