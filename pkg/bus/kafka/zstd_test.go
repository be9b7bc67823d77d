package kafka

import (
	"bytes"
	"io"
	"runtime"
	"testing"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// TestZstdCodec: a zstd producer installs zstdCodec; its frames decode
// with kafka-go's decoder to the bytes written; and a new encoder takes
// what a batch needs, not the 16 MiB history of kafka-go's 8 MiB window.
func TestZstdCodec(t *testing.T) {
	require.Equal(t, kafka.Zstd, Config{Compression: CompressionZstd}.codec())
	require.IsType(t, &zstdCodec{}, compress.Codecs[compress.Zstd])
	require.Equal(t, CompressionZstd, compress.Zstd.String())

	var raw []byte
	for _, m := range corpusRecords(contract.TopicMetrics, 100) {
		raw = append(raw, m.Value...)
	}
	encode := func(c compress.Codec) ([]byte, uint64) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		frame := encodeWith(t, c, raw)
		runtime.ReadMemStats(&after)
		return frame, after.TotalAlloc - before.TotalAlloc
	}

	frame, allocated := encode(&zstdCodec{})
	require.Less(t, allocated, uint64(4<<20), "bytes allocated by a new encoder")
	require.Less(t, len(frame), len(raw)/4)
	_, theirs := encode(&compress.ZstdCodec)
	t.Logf("first batch of %d bytes: %d bytes allocated (kafka-go's codec: %d)", len(raw), allocated, theirs)

	r := compress.Codecs[compress.Zstd].NewReader(bytes.NewReader(frame))
	got, err := io.ReadAll(r)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.Equal(t, raw, got)

	// A pooled encoder starts afresh: the second batch is the same frame.
	c := &zstdCodec{}
	require.Equal(t, encodeWith(t, c, raw), encodeWith(t, c, raw))
}

// encodeWith is raw compressed by one writer of c, which refuses writes
// once closed.
func encodeWith(t *testing.T, c compress.Codec, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := c.NewWriter(&buf)
	_, err := w.Write(raw)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = w.Write(raw)
	require.ErrorIs(t, err, io.ErrClosedPipe, "write after close")
	return buf.Bytes()
}
