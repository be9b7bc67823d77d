package service

import (
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// GCTuner keeps the heap's growth between collections within a headroom:
// after each collection it sets the GC percentage to headroom/live heap,
// clamped between minTunedPercent and the configured percentage. A small
// heap keeps the high percentage that saves the all-in-one's CPU; a large
// one (a TSDB head, the broker's index) grows by at most the headroom, or
// by a quarter of itself, instead of four times itself.
type GCTuner struct {
	maxPercent int
	headroom   uint64
	interval   time.Duration
	read       func() (cycles, live uint64)
	set        func(percent int) int
	logger     *slog.Logger
	percent    prometheus.Gauge
	stop       chan struct{}
	last       int
}

// minTunedPercent is the lowest percentage the tuner sets: a heap far
// larger than the headroom still grows by a quarter of itself between
// collections, so it is not collected back to back. At 100 (Go's default)
// the all-in-one's ~94 MiB live heap under the soak's load grew to twice
// itself, not by the 64 MiB headroom.
const minTunedPercent = 25

// Tuner is the GC tuner of this configuration, nil when there is none:
// no headroom, a percentage not above minTunedPercent (collector off
// included), or GOGC from the environment with the flag at its default
// (the operator's choice).
func (c *RuntimeConfig) Tuner(logger *slog.Logger, reg prometheus.Registerer) *GCTuner {
	if c.GCHeadroomMiB <= 0 || c.GCPercent <= minTunedPercent {
		return nil
	}
	if _, fromEnv := os.LookupEnv("GOGC"); fromEnv && c.GCPercent == c.defaultGCPercent {
		return nil
	}
	return newGCTuner(c.GCPercent, uint64(c.GCHeadroomMiB)<<20, time.Second/4, readGC, debug.SetGCPercent, logger, reg)
}

func newGCTuner(maxPercent int, headroom uint64, interval time.Duration, read func() (uint64, uint64), set func(int) int, logger *slog.Logger, reg prometheus.Registerer) *GCTuner {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &GCTuner{
		maxPercent: maxPercent,
		headroom:   headroom,
		interval:   interval,
		read:       read,
		set:        set,
		logger:     logger,
		percent: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_runtime_gc_percent",
			Help: "GC percentage (GOGC) the tuner set after the last collection: -runtime.gc-headroom-mib over the live heap, between 25 and -runtime.gc-percent.",
		}),
		stop: make(chan struct{}),
		last: maxPercent,
	}
}

// Percent is the percentage for a live heap of live bytes.
func (t *GCTuner) Percent(live uint64) int {
	if live == 0 {
		return t.maxPercent
	}
	p := t.headroom * 100 / live
	return int(max(min(p, uint64(t.maxPercent)), minTunedPercent))
}

// Execute retunes after every collection until Interrupt. The runtime's
// metrics are read on a short tick: a collection a quarter second ago
// still sets the next goal long before the heap reaches it.
func (t *GCTuner) Execute() error {
	t.percent.Set(float64(t.last))
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	var seen uint64
	for {
		select {
		case <-t.stop:
			return nil
		case <-tick.C:
		}
		cycles, live := t.read()
		if cycles == seen {
			continue
		}
		seen = cycles
		if p := t.Percent(live); p != t.last {
			t.set(p)
			t.logger.Debug("gc percent tuned", "gc_percent", p, "live_heap_bytes", live)
			t.last = p
			t.percent.Set(float64(p))
		}
	}
}

// Interrupt ends Execute.
func (t *GCTuner) Interrupt(error) { close(t.stop) }

// readGC reads the completed collections and the live heap they marked.
func readGC() (cycles, live uint64) {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		cycles = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		live = s[1].Value.Uint64()
	}
	return cycles, live
}
