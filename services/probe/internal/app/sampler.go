package app

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/services/probe/internal/collect"
	"github.com/tmaflow/tmaflow/services/probe/internal/queue"
)

// samplerMetrics are the collectors' metrics.
type samplerMetrics struct {
	samples  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	overruns *prometheus.CounterVec
}

func newSamplerMetrics(reg prometheus.Registerer) *samplerMetrics {
	f := promauto.With(reg)
	return &samplerMetrics{
		samples: f.NewCounterVec(prometheus.CounterOpts{Name: "probe_collector_samples_total",
			Help: "Samples a collector sampled into the queue."}, []string{"collector"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{Name: "probe_collector_errors_total",
			Help: "Samplings that failed in part or whole."}, []string{"collector"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "probe_collector_duration_seconds",
			Help: "Duration of a sampling.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 8)}, []string{"collector"}),
		overruns: f.NewCounterVec(prometheus.CounterOpts{Name: "probe_collector_overruns_total",
			Help: "Samplings skipped because the previous one outlasted the interval."}, []string{"collector"}),
	}
}

// appender is the queue as a sampler writes to it.
type appender interface {
	Append(series []samples.Series) error
}

// sampler runs one collector every interval and appends what it
// returns to the queue, stamped with the sampling time.
type sampler struct {
	name     string
	c        collect.Collector
	interval time.Duration
	labels   []samples.Label
	q        appender
	m        *samplerMetrics
	logger   *slog.Logger
	now      func() time.Time
}

func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	var lastErr string
	for {
		start := s.now()
		err := s.sample(ctx, start)
		// Log a failure when it changes, not at every 100 ms sampling.
		if msg := errString(err); msg != lastErr {
			if err != nil {
				s.logger.Warn("sampling failed", "collector", s.name, "err", err)
			} else {
				s.logger.Info("sampling recovered", "collector", s.name)
			}
			lastErr = msg
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A tick that queued while sampling took longer than the
		// interval is dropped rather than sampled late.
		select {
		case <-t.C:
			s.m.overruns.WithLabelValues(s.name).Inc()
		default:
		}
	}
}

func (s *sampler) sample(ctx context.Context, now time.Time) error {
	series, cerr := s.c.Collect(ctx, now)
	s.m.duration.WithLabelValues(s.name).Observe(s.now().Sub(now).Seconds())
	if cerr != nil {
		s.m.errors.WithLabelValues(s.name).Inc()
	}
	if len(series) == 0 {
		return cerr
	}
	collect.WithLabels(series, s.labels)
	if err := s.q.Append(series); err != nil {
		// Refused samples are counted by the queue (stop-sampling).
		return errors.Join(cerr, err)
	}
	n := 0
	for _, sr := range series {
		n += len(sr.Samples)
	}
	s.m.samples.WithLabelValues(s.name).Add(float64(n))
	return cerr
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var _ appender = (*queue.Queue)(nil)
