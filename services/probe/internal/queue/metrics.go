package queue

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the queue's own.
type metrics struct {
	appended       prometheus.Counter
	refused        prometheus.Counter
	dropped        *prometheus.CounterVec
	corruptRecords prometheus.Counter
	corruptBytes   prometheus.Counter
	fsyncs         prometheus.Counter
	syncErrors     prometheus.Counter
	buffered       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, q *Queue) *metrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "probe_queue_bytes", Help: "Bytes of the on-disk queue's segments."},
		func() float64 { return float64(q.stats().bytes) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "probe_queue_segments", Help: "Segment files of the on-disk queue."},
		func() float64 { return float64(q.stats().segments) })
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "probe_queue_oldest_sample_timestamp_seconds", Help: "Timestamp of the oldest sample still in the queue (0 when empty)."},
		func() float64 { return float64(q.stats().oldestMs) / 1000 })
	return &metrics{
		appended: f.NewCounter(prometheus.CounterOpts{Name: "probe_queue_appended_samples_total", Help: "Samples written to the on-disk queue."}),
		refused: f.NewCounter(prometheus.CounterOpts{Name: "probe_queue_refused_samples_total",
			Help: "Samples not sampled into the queue because it was full (policy stop-sampling)."}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{Name: "probe_queue_dropped_samples_total",
			Help: "Samples deleted from the queue before the output acknowledged them, by output and reason (cap, age)."}, []string{"output", "reason"}),
		corruptRecords: f.NewCounter(prometheus.CounterOpts{Name: "probe_queue_corrupt_regions_total",
			Help: "Corrupt or torn regions of segment files skipped (each may span several records)."}),
		corruptBytes: f.NewCounter(prometheus.CounterOpts{Name: "probe_queue_corrupt_bytes_total", Help: "Bytes of segment files skipped as corrupt or torn."}),
		fsyncs:       f.NewCounter(prometheus.CounterOpts{Name: "probe_queue_fsyncs_total", Help: "Group commits (fsync) of the segment appended to."}),
		syncErrors:   f.NewCounter(prometheus.CounterOpts{Name: "probe_queue_fsync_errors_total", Help: "Failed fsyncs of the segment appended to."}),
		buffered: f.NewGaugeVec(prometheus.GaugeOpts{Name: "probe_queue_buffered_samples",
			Help: "Samples in the queue the output has not acknowledged yet."}, []string{"output"}),
	}
}
