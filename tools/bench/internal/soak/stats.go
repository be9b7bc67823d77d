package soak

import (
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/loadgen"
)

// Trend is a series' least-squares line over a span of samples.
type Trend struct {
	// Mean is the mean of the values; PerSecond the fitted slope.
	Mean, PerSecond float64
	N               int
}

// Per10Min is the slope per 10 minutes.
func (t Trend) Per10Min() float64 { return t.PerSecond * 600 }

// PercentPer10Min is the slope per 10 minutes in percent of the mean (0
// when the mean is 0).
func (t Trend) PercentPer10Min() float64 {
	if t.Mean == 0 {
		return 0
	}
	return 100 * t.Per10Min() / t.Mean
}

// Fit is the least-squares line of ys over xs (seconds); fewer than two
// points, or all at one x, have slope 0.
func Fit(xs, ys []float64) Trend {
	n := float64(len(xs))
	if len(xs) == 0 || len(xs) != len(ys) {
		return Trend{}
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy = sx+xs[i], sy+ys[i]
		sxx, sxy = sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	t := Trend{Mean: sy / n, N: len(xs)}
	if den := n*sxx - sx*sx; len(xs) >= 2 && den != 0 {
		t.PerSecond = (n*sxy - sx*sy) / den
	}
	return t
}

// Histogram counts latencies in buckets 1% wide (from 1µs), so the
// quantiles of a long run cost a few kB, within 1%.
type Histogram struct {
	counts []int64
	n      int64
	max    time.Duration
}

const histGrowth = 1.01

func histBucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us <= 1 {
		return 0
	}
	return int(math.Log(us)/math.Log(histGrowth)) + 1
}

// histUpper is the upper bound of bucket i.
func histUpper(i int) time.Duration {
	return time.Duration(math.Pow(histGrowth, float64(i)) * float64(time.Microsecond))
}

// Add counts one latency.
func (h *Histogram) Add(d time.Duration) {
	i := histBucket(d)
	if i >= len(h.counts) {
		h.counts = slices.Grow(h.counts, i+1-len(h.counts))[:i+1]
	}
	h.counts[i]++
	h.n++
	h.max = max(h.max, d)
}

// Count is how many latencies were added.
func (h *Histogram) Count() int64 { return h.n }

// Max is the largest latency added.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile is the nearest-rank q-quantile (0 < q ≤ 1), as the upper
// bound of its bucket (never above Max).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(int64(math.Ceil(q*float64(h.n)-1e-9)), 1)
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(histUpper(i), h.max)
		}
	}
	return h.max
}

// Window collects the answers of the load, per sample interval and for
// the whole run; safe for concurrent use.
type Window struct {
	mu        sync.Mutex
	lat       []time.Duration // accepted requests of the current interval
	measuring bool            // after the warm-up: run counts
	run       Histogram       // accepted requests of the run after the warm-up
	accepted  int64
	rejected  int64
	statuses  map[int]int64 // of the run; 0 is a transport error
}

// Answers is what an interval's answers were.
type Answers struct {
	// Accepted and Rejected are requests answered 2xx and otherwise (or
	// not at all) in the interval.
	Accepted, Rejected int64
	P50, P99, Max      time.Duration
}

// Observe counts one request; its latency counts only if accepted.
func (w *Window) Observe(lat time.Duration, status int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.statuses == nil {
		w.statuses = map[int]int64{}
	}
	w.statuses[status]++
	if status/100 != 2 {
		w.rejected++
		return
	}
	w.accepted++
	w.lat = append(w.lat, lat)
	if w.measuring {
		w.run.Add(lat)
	}
}

// EndWarmup starts counting latencies into the run's histogram.
func (w *Window) EndWarmup() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.measuring = true
}

// Take returns the interval's answers and starts the next interval.
func (w *Window) Take() Answers {
	w.mu.Lock()
	lat := w.lat
	a := Answers{Accepted: w.accepted, Rejected: w.rejected}
	w.lat, w.accepted, w.rejected = make([]time.Duration, 0, cap(lat)), 0, 0
	w.mu.Unlock()
	slices.Sort(lat)
	a.P50, a.P99 = loadgen.Percentile(lat, 0.50), loadgen.Percentile(lat, 0.99)
	if len(lat) > 0 {
		a.Max = lat[len(lat)-1]
	}
	return a
}

// Run is the histogram of the run's accepted requests after the warm-up
// and the count of each status of the whole run.
func (w *Window) Run() (Histogram, map[int]int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := w.run
	h.counts = slices.Clone(h.counts)
	return h, maps.Clone(w.statuses)
}
