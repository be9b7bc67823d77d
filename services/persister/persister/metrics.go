package persister

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Outcomes of an ingested sample.
const (
	outcomeAppended = "appended" // accepted by the TSDB
	outcomeStored   = "stored"   // refused, but the same value was stored already
	outcomeRejected = "rejected" // dead-lettered
)

type ingestMetrics struct {
	batches      prometheus.Counter
	commitErrors prometheus.Counter
	samples      map[string]prometheus.Counter // by outcome
	rejected     map[string]prometheus.Counter // by reason
	append       prometheus.Histogram
	commitSize   prometheus.Histogram
	lag          prometheus.Gauge
	caughtUp     prometheus.Gauge
}

func newIngestMetrics(reg prometheus.Registerer) *ingestMetrics {
	f := promauto.With(reg)
	m := &ingestMetrics{
		batches: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_persister_batches_total",
			Help: "Sample batches of topic-metrics committed to the TSDB.",
		}),
		commitErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_persister_append_failures_total",
			Help: "Failed appends or commits to the TSDB; the batch is retried until it is stored.",
		}),
		append: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tmaflow_persister_append_duration_seconds",
			Help:    "Time to append and commit one batch to the TSDB.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		commitSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tmaflow_persister_tsdb_commit_batches",
			Help:    "Batches of topic-metrics per TSDB commit: batches appended while a commit runs share the next one.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}),
		lag: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_persister_consumer_lag_records",
			Help: "Records of topic-metrics behind the partition ends, summed over partitions, as of the last record consumed (or the lag hook).",
		}),
		caughtUp: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_persister_caught_up",
			Help: "1 once the TSDB consumer caught up with topic-metrics after start.",
		}),
		samples:  map[string]prometheus.Counter{},
		rejected: map[string]prometheus.Counter{},
	}
	samples := f.NewCounterVec(prometheus.CounterOpts{
		Name: "tmaflow_persister_samples_total",
		Help: "Samples of topic-metrics by outcome: appended (accepted by the TSDB), stored (refused but already stored with the same value: a re-delivery), rejected (sent to topic-dlq).",
	}, []string{"outcome"})
	for _, o := range []string{outcomeAppended, outcomeStored, outcomeRejected} {
		m.samples[o] = samples.WithLabelValues(o)
	}
	rejected := f.NewCounterVec(prometheus.CounterOpts{
		Name: "tmaflow_persister_rejected_samples_total",
		Help: "Samples sent to topic-dlq by reason: too_old, out_of_bounds, out_of_order, duplicate_timestamp, invalid_labels, tenant_mismatch, invalid.",
	}, []string{"reason"})
	for _, r := range rejectReasons {
		m.rejected[r] = rejected.WithLabelValues(r)
	}
	return m
}

type remoteWriteMetrics struct {
	requests *prometheus.CounterVec   // url, code
	samples  *prometheus.CounterVec   // url, outcome
	duration *prometheus.HistogramVec // url
	retries  *prometheus.CounterVec   // url
}

func newRemoteWriteMetrics(reg prometheus.Registerer) *remoteWriteMetrics {
	f := promauto.With(reg)
	return &remoteWriteMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_persister_remote_write_requests_total",
			Help: "Remote-write requests by endpoint and status code (\"error\" when no response came).",
		}, []string{"url", "code"}),
		samples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_persister_remote_write_samples_total",
			Help: "Samples by endpoint and outcome: sent (answered 2xx) or rejected (answered 4xx, sent to topic-dlq).",
		}, []string{"url", "outcome"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_persister_remote_write_duration_seconds",
			Help:    "Duration of one remote-write request.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"url"}),
		retries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_persister_remote_write_retries_total",
			Help: "Remote-write requests retried after 5xx, 429 or a failed connection.",
		}, []string{"url"}),
	}
}

type apiMetrics struct {
	requests *prometheus.CounterVec   // handler, code
	duration *prometheus.HistogramVec // handler
	auth     *prometheus.CounterVec   // reason
}

func newAPIMetrics(reg prometheus.Registerer) *apiMetrics {
	f := promauto.With(reg)
	return &apiMetrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_persister_api_requests_total",
			Help: "Query API requests by handler and status code.",
		}, []string{"handler", "code"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_persister_api_request_duration_seconds",
			Help:    "Query API request duration by handler.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30, 120},
		}, []string{"handler"}),
		auth: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_persister_api_auth_failures_total",
			Help: "Query API requests refused by reason: missing (no tenant), invalid (bad credentials or tenant), forbidden (header tenant differs from the credentials').",
		}, []string{"reason"}),
	}
}
