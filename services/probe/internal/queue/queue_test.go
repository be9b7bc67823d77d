package queue

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// collection is one record's worth: n series of one sample at t.
func collection(n int, t int64) []samples.Series {
	out := make([]samples.Series, n)
	for i := range out {
		out[i] = samples.Series{
			Labels:  []samples.Label{{Name: "__name__", Value: "m"}, {Name: "i", Value: strconv.Itoa(i)}},
			Samples: []samples.Sample{{TimestampMs: t, Value: float64(t) + float64(i)}},
		}
	}
	return out
}

func open(t *testing.T, dir string, reg *prometheus.Registry, mod func(*Options)) *Queue {
	t.Helper()
	opts := Options{Dir: dir, Outputs: []string{"a", "b"}, Registerer: reg, SegmentBytes: 512}
	if mod != nil {
		mod(&opts)
	}
	q, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	return q
}

// readAll reads output's unacknowledged records below head, acking them,
// and returns the timestamps seen.
func readAll(t *testing.T, q *Queue, output string) []int64 {
	t.Helper()
	var ts []int64
	r := q.NewReader()
	for {
		from, to, ok := q.Gap(output, q.Head())
		if !ok {
			return ts
		}
		b, err := r.Read(context.Background(), from, to, 7)
		require.NoError(t, err)
		for _, s := range b.Series {
			if s.Labels[1].Value == "0" {
				ts = append(ts, s.Samples[0].TimestampMs)
			}
		}
		require.NoError(t, q.Ack(output, b.First, b.Next, b.Samples))
	}
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestQueueResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, prometheus.NewRegistry(), nil)
	for i := range int64(20) {
		require.NoError(t, q.Append(collection(3, i)))
	}
	require.Equal(t, seq(0, 20), readAll(t, q, "a"))
	require.Equal(t, int64(0), q.Buffered("a"))
	require.Equal(t, int64(60), q.Buffered("b"))
	for i := range int64(5) {
		require.NoError(t, q.Append(collection(3, 20+i)))
	}
	// No Close: as after a kill -9.
	q2 := open(t, dir, prometheus.NewRegistry(), nil)
	require.Equal(t, int64(15), q2.Buffered("a"))
	require.Equal(t, seq(20, 25), readAll(t, q2, "a"))
	require.Equal(t, seq(0, 25), readAll(t, q2, "b"))
	require.NoError(t, q2.Append(collection(3, 25)))
	require.Equal(t, []int64{25}, readAll(t, q2, "a"))
}

func TestQueueLiveFirstThenBacklog(t *testing.T) {
	q := open(t, t.TempDir(), prometheus.NewRegistry(), nil)
	for i := range int64(10) {
		require.NoError(t, q.Append(collection(2, i)))
	}
	// Live jumps to the head and ships the newest first.
	live := q.NewReader()
	require.NoError(t, q.Append(collection(2, 10)))
	b, err := live.Read(context.Background(), 10, ^uint64(0), 100)
	require.NoError(t, err)
	require.Equal(t, int64(10), b.Series[0].Samples[0].TimestampMs)
	require.NoError(t, q.Ack("a", b.First, b.Next, b.Samples))
	from, to, ok := q.Gap("a", 10)
	require.True(t, ok)
	require.Equal(t, [2]uint64{0, 10}, [2]uint64{from, to})
	require.Equal(t, seq(0, 10), readAll(t, q, "a"))
	_, _, ok = q.Gap("a", q.Head())
	require.False(t, ok)
}

func TestQueueReadWaitsForAppend(t *testing.T) {
	q := open(t, t.TempDir(), prometheus.NewRegistry(), nil)
	r := q.NewReader()
	got := make(chan Batch, 1)
	go func() {
		b, err := r.Read(context.Background(), 0, ^uint64(0), 10)
		if err == nil {
			got <- b
		}
		close(got)
	}()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, q.Append(collection(1, 7)))
	b := <-got
	require.Equal(t, 1, b.Records)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := r.Read(ctx, 1, ^uint64(0), 10)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestQueueCorruptSegment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, path string)
		// lost is how many of the segment's records may be lost at most.
		lost int
	}{
		{name: "flipped byte", lost: 1, corrupt: func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b[len(b)/2] ^= 0xff
			require.NoError(t, os.WriteFile(path, b, 0o644))
		}},
		{name: "torn tail", lost: 1, corrupt: func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, fi.Size()-5))
		}},
		{name: "zeroed block", lost: 5, corrupt: func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = f.WriteAt(make([]byte, 200), 30)
			require.NoError(t, err)
			require.NoError(t, f.Close())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			q := open(t, dir, prometheus.NewRegistry(), func(o *Options) { o.SegmentBytes = 1 << 20 })
			for i := range int64(10) {
				require.NoError(t, q.Append(collection(2, i)))
			}
			require.NoError(t, q.Close())
			segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
			require.NoError(t, err)
			require.Len(t, segs, 1)
			tc.corrupt(t, segs[0])

			reg := prometheus.NewRegistry()
			q2 := open(t, dir, reg, nil)
			require.Positive(t, testutil.ToFloat64(q2.m.corruptRecords))
			require.Positive(t, testutil.ToFloat64(q2.m.corruptBytes))
			got := readAll(t, q2, "a")
			require.GreaterOrEqual(t, len(got), 10-tc.lost)
			require.Less(t, len(got), 10)
			require.Subset(t, seq(0, 10), got)
			// New samples still flow after the corrupt region.
			require.NoError(t, q2.Append(collection(2, 10)))
			require.Equal(t, []int64{10}, readAll(t, q2, "a"))
		})
	}
}

func TestQueueCap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy Policy
	}{
		{name: "drop oldest", policy: DropOldest},
		{name: "stop sampling", policy: StopSampling},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := open(t, t.TempDir(), prometheus.NewRegistry(), func(o *Options) {
				o.MaxBytes, o.Policy, o.SegmentBytes = 2048, tc.policy, 512
			})
			refused := 0
			for i := range int64(100) {
				err := q.Append(collection(2, i))
				if err != nil {
					require.ErrorIs(t, err, ErrFull)
					refused += 2
				}
			}
			require.LessOrEqual(t, q.stats().bytes, int64(2048))
			got := readAll(t, q, "a")
			require.NotEmpty(t, got)
			kept := 2 * len(got)
			dropped := testutil.ToFloat64(q.m.dropped.WithLabelValues("a", "cap"))
			require.Equal(t, float64(refused), testutil.ToFloat64(q.m.refused))
			require.Equal(t, float64(200), float64(kept)+dropped+float64(refused))
			if tc.policy == DropOldest {
				require.Zero(t, refused)
				require.Equal(t, int64(99), got[len(got)-1], "the newest are kept")
			} else {
				require.Zero(t, dropped)
				require.Equal(t, seq(0, int64(len(got))), got, "the oldest are kept")
				// Once every output shipped, there is room again.
				require.Equal(t, got, readAll(t, q, "b"))
				require.NoError(t, q.Append(collection(2, 100)))
			}
		})
	}
}

func TestQueueMaxAge(t *testing.T) {
	now := time.UnixMilli(1000)
	q := open(t, t.TempDir(), prometheus.NewRegistry(), func(o *Options) {
		o.MaxAge, o.Now = time.Second, func() time.Time { return now }
	})
	for i := range int64(50) {
		require.NoError(t, q.Append(collection(2, i*100)))
	}
	now = time.UnixMilli(4000)
	q.mu.Lock()
	q.expire()
	q.mu.Unlock()
	dropped := testutil.ToFloat64(q.m.dropped.WithLabelValues("a", "age"))
	require.Positive(t, dropped)
	got := readAll(t, q, "a")
	require.Equal(t, float64(100), dropped+float64(2*len(got)))
	require.Equal(t, int64(4900), got[len(got)-1])
}

func TestAckSet(t *testing.T) {
	var a ackSet
	a = a.add(5, 10).add(0, 2).add(2, 3).add(12, 15).add(9, 12)
	require.Equal(t, ackSet{{0, 3}, {5, 15}}, a)
	require.True(t, a.covers(6, 15))
	require.False(t, a.covers(2, 6))
	require.Equal(t, uint64(3), a.firstGap(0))
	require.Equal(t, uint64(5), a.gapEnd(3, 100))
	require.Equal(t, uint64(15), a.firstGap(7))
	require.Equal(t, uint64(100), a.gapEnd(15, 100))
	b, err := readAckSetBytes(t, a.marshal())
	require.NoError(t, err)
	require.Equal(t, a, b)
}

func readAckSetBytes(t *testing.T, b []byte) (ackSet, error) {
	path := filepath.Join(t.TempDir(), "acked")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return readAckSet(path)
}
