package reporter

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Run outcomes, the status label of the run metrics.
const (
	statusSuccess = "success"
	statusRetry   = "retry"
	statusFailed  = "failed"
)

// metrics are the reporter's own.
type metrics struct {
	runs          *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	lastSuccess   *prometheus.GaugeVec
	skipped       *prometheus.CounterVec
	reports       prometheus.Gauge
	reloadOK      prometheus.Gauge
	reloadFailure prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_reporter_runs_total",
			Help: "Report runs by outcome: success, retry (an attempt failed and will be retried) or failed (a scheduled run given up until the next start, or a run asked for over HTTP).",
		}, []string{"tenant", "report", "status"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_reporter_run_duration_seconds",
			Help:    "Duration of report run attempts: queries, rendering, storing and publishing.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 12),
		}, []string{"tenant", "report"}),
		lastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmaflow_reporter_last_success_timestamp_seconds",
			Help: "When the last successful run of each report ended (scheduled, made up or asked for), by the wall clock.",
		}, []string{"tenant", "report"}),
		skipped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_reporter_catch_up_skipped_total",
			Help: "Missed runs not made up because more than run.max-catch-up were missed.",
		}, []string{"tenant", "report"}),
		reports: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_reporter_reports",
			Help: "Report definitions loaded.",
		}),
		reloadOK: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_reporter_config_last_reload_successful",
			Help: "Whether the last load of the report definitions succeeded (1) or kept the previous ones (0).",
		}),
		reloadFailure: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_reporter_config_reload_failures_total",
			Help: "Loads of the report definitions that failed.",
		}),
	}
}
