package kafka

import (
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go/compress"
)

// zstdWindow is the window of the producers' zstd encoder. A record batch
// is at most -kafka.batch-bytes (1 MiB by default) and usually a few KB, so
// matches never reach back further than a batch: the library's default
// window (8 MiB, with a history buffer of twice that per pooled encoder)
// only costs memory, 16 MiB per encoder in the all-in-one's heap profile.
const zstdWindow = 256 << 10

// zstdCodec is the zstd codec of every producer: kafka-go's own with a
// 256 KiB window and encoders that grow their buffers only as far as a
// batch needs. Same level (3, SpeedDefault), same bytes on our records,
// about the same CPU (BenchmarkCompression; SpeedFastest was no faster
// on them, within noise, and 1–10 % larger); readers of the batches (any zstd decoder,
// kcat, the Java client) see a standard zstd frame. Decoding stays
// kafka-go's.
type zstdCodec struct {
	encoders sync.Pool // *zstd.Encoder
}

var installZstd sync.Once

// useZstdCodec installs zstdCodec in kafka-go's codec table, which both
// the sender (protocol.RecordSet) and kafka-go's Writer encode through;
// the table is global in kafka-go, so this is done once per process.
func useZstdCodec() {
	installZstd.Do(func() { compress.Codecs[compress.Zstd] = &zstdCodec{} })
}

func (*zstdCodec) Code() int8 { return int8(compress.Zstd) }

func (*zstdCodec) Name() string { return CompressionZstd }

func (*zstdCodec) NewReader(r io.Reader) io.ReadCloser {
	return compress.ZstdCodec.NewReader(r)
}

func (c *zstdCodec) NewWriter(w io.Writer) io.WriteCloser {
	enc, _ := c.encoders.Get().(*zstd.Encoder)
	if enc == nil {
		var err error
		enc, err = zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithLowerEncoderMem(true),
			zstd.WithZeroFrames(true),
		)
		if err != nil {
			return &zstdWriter{err: err}
		}
	} else {
		enc.Reset(w)
	}
	return &zstdWriter{codec: c, enc: enc, err: io.ErrClosedPipe}
}

// zstdWriter hands its encoder back to the pool on Close. Without an
// encoder (none could be made, or closed) it answers err.
type zstdWriter struct {
	codec *zstdCodec
	enc   *zstd.Encoder
	err   error
}

func (w *zstdWriter) Write(p []byte) (int, error) {
	if w.enc == nil {
		return 0, w.err
	}
	return w.enc.Write(p)
}

func (w *zstdWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.enc == nil {
		return 0, w.err
	}
	return w.enc.ReadFrom(r)
}

func (w *zstdWriter) Close() error {
	if w.enc == nil {
		return w.err
	}
	err := w.enc.Close()
	w.enc.Reset(io.Discard) // keep no reference to the batch's buffer
	w.codec.encoders.Put(w.enc)
	w.enc = nil
	return err
}
