package ship

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/services/probe/internal/queue"
)

// receiver is an in-process output that counts what it got by timestamp
// and can be down.
type receiver struct {
	mu    sync.Mutex
	got   map[int64]int
	order []int64
	down  atomic.Bool
}

func newReceiver() *receiver { return &receiver{got: map[int64]int{}} }

func (r *receiver) Send(_ context.Context, _ uint64, series []samples.Series) error {
	if r.down.Load() {
		return errors.New("connection refused")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range series {
		for _, smp := range s.Samples {
			r.got[smp.TimestampMs]++
			r.order = append(r.order, smp.TimestampMs)
		}
	}
	return nil
}

func (r *receiver) count() (distinct, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.got {
		distinct++
		dups += n - 1
	}
	return distinct, dups
}

func one(t int64) []samples.Series {
	return []samples.Series{{
		Labels:  []samples.Label{{Name: "__name__", Value: "m"}, {Name: "i", Value: strconv.Itoa(int(t % 3))}},
		Samples: []samples.Sample{{TimestampMs: t, Value: float64(t)}},
	}}
}

func TestForwarderOutage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		liveFirst bool
	}{
		{name: "live first", liveFirst: true},
		{name: "in order", liveFirst: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := queue.Open(queue.Options{Dir: t.TempDir(), Outputs: []string{"o"}, SegmentBytes: 4096})
			require.NoError(t, err)
			defer func() { require.NoError(t, q.Close()) }()
			rcv := newReceiver()
			reg := prometheus.NewRegistry()
			f := NewForwarder("o", rcv, q, ForwarderOptions{
				LiveFirst: tc.liveFirst, BatchSamples: 5, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
				Poll: time.Millisecond, FlushInterval: -1, Metrics: NewMetrics(reg),
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()

			ts := int64(0)
			appendN := func(n int) {
				for range n {
					require.NoError(t, q.Append(one(ts)))
					ts++
				}
			}
			appendN(20)
			require.Eventually(t, func() bool { d, _ := rcv.count(); return d == 20 }, 5*time.Second, time.Millisecond)
			rcv.down.Store(true)
			appendN(200)
			time.Sleep(20 * time.Millisecond)
			rcv.down.Store(false)
			appendN(5)
			require.Eventually(t, func() bool { d, _ := rcv.count(); return d == 225 }, 10*time.Second, time.Millisecond)
			cancel()
			require.NoError(t, <-done)
			d, dups := rcv.count()
			require.Equal(t, 225, d)
			require.Zero(t, dups)
			require.Zero(t, q.Buffered("o"))
			require.Positive(t, testutil.ToFloat64(f.opts.Metrics.failures.WithLabelValues("o")))

			// Where did the newest sample land among the post-outage ones?
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			pos := -1
			for i, v := range rcv.order {
				if v == 224 {
					pos = i
				}
			}
			if tc.liveFirst {
				require.Less(t, pos, 150, "the newest sample goes ahead of the backlog")
			} else {
				require.Equal(t, len(rcv.order)-1, pos, "in order: the newest sample comes last")
			}
		})
	}
}

func TestForwarderPermanentRefusal(t *testing.T) {
	q, err := queue.Open(queue.Options{Dir: t.TempDir(), Outputs: []string{"o"}})
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	var calls atomic.Int32
	out := OutputFunc(func(context.Context, uint64, []samples.Series) error {
		calls.Add(1)
		return &PermanentError{Err: errors.New("400 out of bounds")}
	})
	m := NewMetrics(prometheus.NewRegistry())
	f := NewForwarder("o", out, q, ForwarderOptions{Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	require.NoError(t, q.Append(one(1)))
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.rejected.WithLabelValues("o")) == 1 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return q.Buffered("o") == 0 }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, int32(1), calls.Load(), "a refused batch is not resent")
}

func TestForwarderBacklogRate(t *testing.T) {
	q, err := queue.Open(queue.Options{Dir: t.TempDir(), Outputs: []string{"o"}})
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	// A backlog of 100 samples at 500/s takes ≥ 200 ms.
	rcv := newReceiver()
	rcv.down.Store(true)
	f := NewForwarder("o", rcv, q, ForwarderOptions{LiveFirst: true, BatchSamples: 10, BacklogRate: 500, MinBackoff: time.Millisecond, Poll: time.Millisecond, FlushInterval: -1})
	for i := range int64(100) {
		require.NoError(t, q.Append(one(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = f.Run(ctx) }()
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	rcv.down.Store(false)
	require.Eventually(t, func() bool { d, _ := rcv.count(); return d == 100 }, 5*time.Second, time.Millisecond)
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
}

// TestForwarderFlushInterval: sampling every 10 ms, the live sender sends
// at most one request per flush interval, and every sample still arrives.
func TestForwarderFlushInterval(t *testing.T) {
	for _, liveFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("live first %v", liveFirst), func(t *testing.T) {
			q, err := queue.Open(queue.Options{Dir: t.TempDir(), Outputs: []string{"o"}})
			require.NoError(t, err)
			defer func() { require.NoError(t, q.Close()) }()
			var requests atomic.Int32
			rcv := newReceiver()
			out := OutputFunc(func(ctx context.Context, first uint64, s []samples.Series) error {
				requests.Add(1)
				return rcv.Send(ctx, first, s)
			})
			f := NewForwarder("o", out, q, ForwarderOptions{LiveFirst: liveFirst, FlushInterval: 200 * time.Millisecond, Poll: time.Millisecond})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = f.Run(ctx) }()
			start := time.Now()
			for i := range int64(100) {
				require.NoError(t, q.Append(one(i)))
				time.Sleep(10 * time.Millisecond)
			}
			require.Eventually(t, func() bool { d, _ := rcv.count(); return d == 100 }, 5*time.Second, time.Millisecond)
			// About one request per 200 ms over the appends (1 s, longer on
			// a busy machine), not one per sample.
			flushes := int32(time.Since(start) / (200 * time.Millisecond))
			require.LessOrEqual(t, requests.Load(), flushes+3, "requests in %s", time.Since(start))
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			if !liveFirst {
				require.True(t, slices.IsSorted(rcv.order), "in order")
			}
		})
	}
}
