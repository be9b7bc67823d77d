package ship

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/probe/internal/queue"
)

// Queue is what a Forwarder needs of the on-disk queue.
type Queue interface {
	NewReader() *queue.Reader
	Head() uint64
	AckedEnd(output string) uint64
	Gap(output string, limit uint64) (from, to uint64, ok bool)
	Ack(output string, first, next uint64, n int) error
}

// ForwarderOptions configure a Forwarder; zero values take defaults.
type ForwarderOptions struct {
	// BatchSamples is the most samples one request carries (2000).
	BatchSamples int
	// LiveFirst sends new data ahead of a backlog; the backlog drains
	// beside it, oldest first. Off: strictly in order (for receivers that
	// refuse out-of-order samples).
	LiveFirst bool
	// LiveLag is how many records the live sender may fall behind the
	// head before it jumps to the head, leaving the rest to the backlog
	// (10).
	LiveLag uint64
	// BacklogRate bounds the backlog's samples per second (0: no bound).
	BacklogRate float64
	// MinBackoff and MaxBackoff bound the wait between retries (100 ms, 5 s).
	MinBackoff, MaxBackoff time.Duration
	// FlushInterval is the least time between two live sends (1 s):
	// samples taken meanwhile go in one request, so sampling at 100 ms
	// does not cost ten requests and ten offset writes a second. 0 takes
	// the default; a negative value sends every record at once.
	FlushInterval time.Duration
	// Poll is how often the backlog sender looks for a new gap (1 s).
	Poll    time.Duration
	Logger  *slog.Logger
	Metrics *Metrics
}

// Metrics are the outputs' metrics (one set for all, by output label).
type Metrics struct {
	sent        *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	failures    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	Unmapped    *prometheus.CounterVec
}

// NewMetrics registers the outputs' metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		sent: f.NewCounterVec(prometheus.CounterOpts{Name: "probe_output_sent_samples_total",
			Help: "Samples the receiver acknowledged, by output and lane (live, backlog)."}, []string{"output", "lane"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{Name: "probe_output_rejected_samples_total",
			Help: "Samples the receiver refused for good (HTTP 400/422); not resent."}, []string{"output"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{Name: "probe_output_failed_requests_total",
			Help: "Requests that failed and will be retried."}, []string{"output"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "probe_output_request_duration_seconds",
			Help: "Duration of sends.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"output"}),
		lastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{Name: "probe_output_last_success_timestamp_seconds",
			Help: "When the output last delivered a batch."}, []string{"output"}),
		Unmapped: f.NewCounterVec(prometheus.CounterOpts{Name: "probe_output_unmapped_samples_total",
			Help: "Samples a TMA output left out: no mapping gives them a description id."}, []string{"output"}),
	}
}

// Forwarder sends one output's share of the queue.
type Forwarder struct {
	name string
	out  Output
	q    Queue
	opts ForwarderOptions
	log  *slog.Logger

	live        atomic.Uint64 // the live sender's position: the backlog stays below
	lastSuccess atomic.Int64  // unix ns
}

// NewForwarder returns a forwarder of output name.
func NewForwarder(name string, out Output, q Queue, opts ForwarderOptions) *Forwarder {
	if opts.BatchSamples <= 0 {
		opts.BatchSamples = 2000
	}
	if opts.LiveLag == 0 {
		opts.LiveLag = 10
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Second, opts.MinBackoff)
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	return &Forwarder{name: name, out: out, q: q, opts: opts, log: opts.Logger.With("output", name)}
}

// LastSuccess is when the output last delivered (zero: never).
func (f *Forwarder) LastSuccess() time.Time {
	if ns := f.lastSuccess.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Run sends until ctx ends.
func (f *Forwarder) Run(ctx context.Context) error {
	if !f.opts.LiveFirst {
		f.live.Store(math.MaxUint64)
		return f.backlog(ctx, false)
	}
	f.live.Store(f.q.AckedEnd(f.name))
	done := make(chan error, 1)
	go func() { done <- f.backlog(ctx, true) }()
	err := f.liveLoop(ctx)
	return errors.Join(err, <-done)
}

// liveLoop sends the newest records as they are appended. After a
// restart or a delivery that had to be retried (an outage), it jumps to
// the head when more than LiveLag records wait, leaving them to the
// backlog sender; records that merely accumulated between two flushes
// are sent in order.
func (f *Forwarder) liveLoop(ctx context.Context) error {
	r := f.q.NewReader()
	var last time.Time
	behind := true
	for {
		if !service.Sleep(ctx, time.Until(last.Add(f.opts.FlushInterval))) {
			return nil
		}
		pos := f.live.Load()
		if head := f.q.Head(); behind && head > pos+f.opts.LiveLag {
			pos = head - 1
			f.live.Store(pos)
		}
		b, err := r.Read(ctx, pos, math.MaxUint64, f.opts.BatchSamples)
		if err != nil {
			return ctxErr(ctx, err)
		}
		last = time.Now()
		retried, err := f.deliver(ctx, b, "live")
		if err != nil {
			return ctxErr(ctx, err)
		}
		behind = retried
		f.live.Store(b.Next)
	}
}

// backlog sends the oldest unacknowledged records below the live
// sender's position, at BacklogRate when rated.
func (f *Forwarder) backlog(ctx context.Context, rated bool) error {
	r := f.q.NewReader()
	var lastLive time.Time
	lane := "backlog"
	if !rated {
		lane = "live"
	}
	for {
		limit := f.live.Load()
		if !rated {
			limit = f.q.Head()
		}
		from, to, ok := f.q.Gap(f.name, limit)
		if !ok {
			if !rated {
				// In order and caught up: paced as liveLoop is, then
				// waiting for the next record at the head.
				if wait := time.Until(lastLive.Add(f.opts.FlushInterval)); wait > 0 {
					if !service.Sleep(ctx, wait) {
						return nil
					}
					continue
				}
				from, to = f.q.Head(), math.MaxUint64
			} else if !service.Sleep(ctx, f.opts.Poll) {
				return nil
			} else {
				continue
			}
		}
		start := time.Now()
		b, err := r.Read(ctx, from, to, f.opts.BatchSamples)
		if err != nil {
			return ctxErr(ctx, err)
		}
		if _, err := f.deliver(ctx, b, lane); err != nil {
			return ctxErr(ctx, err)
		}
		lastLive = time.Now()
		if rated && f.opts.BacklogRate > 0 && b.Samples > 0 {
			pace := time.Duration(float64(b.Samples) / f.opts.BacklogRate * float64(time.Second))
			if !service.Sleep(ctx, pace-time.Since(start)) {
				return nil
			}
		}
	}
}

// deliver sends b until the receiver takes or refuses it, then
// acknowledges it to the queue; retried reports that a send failed first.
func (f *Forwarder) deliver(ctx context.Context, b queue.Batch, lane string) (retried bool, err error) {
	m := f.opts.Metrics
	backoff := f.opts.MinBackoff
	for b.Records > 0 {
		start := time.Now()
		err := f.out.Send(ctx, b.First, b.Series)
		m.duration.WithLabelValues(f.name).Observe(time.Since(start).Seconds())
		if errors.Is(err, ErrNothingToSend) {
			break
		}
		if err == nil {
			m.sent.WithLabelValues(f.name, lane).Add(float64(b.Samples))
			f.lastSuccess.Store(time.Now().UnixNano())
			m.lastSuccess.WithLabelValues(f.name).SetToCurrentTime()
			break
		}
		if IsPermanent(err) {
			m.rejected.WithLabelValues(f.name).Add(float64(b.Samples))
			f.log.Error("output refused a batch for good", "lane", lane, "samples", b.Samples, "err", err)
			break
		}
		if ctx.Err() != nil {
			return retried, ctx.Err()
		}
		retried = true
		m.failures.WithLabelValues(f.name).Inc()
		f.log.Warn("send failed, retrying", "lane", lane, "samples", b.Samples, "backoff", backoff, "err", err)
		if !service.Sleep(ctx, backoff) {
			return retried, ctx.Err()
		}
		backoff = min(2*backoff, f.opts.MaxBackoff)
	}
	return retried, f.q.Ack(f.name, b.First, b.Next, b.Samples)
}

// ctxErr is nil when err only says that ctx ended.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
