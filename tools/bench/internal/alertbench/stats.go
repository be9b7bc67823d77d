package alertbench

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/loadgen"
)

// Latency is the distribution of one path's latencies over the trials.
type Latency struct {
	N, Missing         int // alerts that arrived, trials whose alert did not
	P50, P90, P99, Max time.Duration
}

func summarize(ds []time.Duration, missing int) Latency {
	s := slices.Clone(ds)
	slices.Sort(s)
	l := Latency{N: len(s), Missing: missing}
	if len(s) > 0 {
		l.P50, l.P90, l.P99, l.Max = loadgen.Percentile(s, 0.5), loadgen.Percentile(s, 0.9), loadgen.Percentile(s, 0.99), s[len(s)-1]
	}
	return l
}

// arrivals records when the first firing alert of each key (a trial's
// resource_id) arrived; safe for concurrent use.
type arrivals struct {
	mu    sync.Mutex
	at    map[string]time.Time
	ready map[string]chan struct{}
}

func newArrivals() *arrivals {
	return &arrivals{at: map[string]time.Time{}, ready: map[string]chan struct{}{}}
}

func (a *arrivals) mark(key string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.at[key]; ok {
		return
	}
	a.at[key] = at
	if ch, ok := a.ready[key]; ok {
		close(ch)
		delete(a.ready, key)
	}
}

// await returns key's arrival, waiting up to timeout.
func (a *arrivals) await(ctx context.Context, key string, timeout time.Duration) (time.Time, bool) {
	a.mu.Lock()
	if at, ok := a.at[key]; ok {
		a.mu.Unlock()
		return at, true
	}
	ch, ok := a.ready[key]
	if !ok {
		ch = make(chan struct{})
		a.ready[key] = ch
	}
	a.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.at[key]
	return at, ok
}
