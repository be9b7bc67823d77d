package ruler

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Evaluation triggers.
const (
	triggerData    = "data"
	triggerTick    = "tick"
	triggerRestore = "restore"
)

// metrics are the ruler's own metrics; the rules package adds the
// prometheus_rule_* ones and the head the prometheus_tsdb_head_* ones.
type metrics struct {
	evaluations    *prometheus.CounterVec   // tenant, group, trigger
	evalDuration   *prometheus.HistogramVec // tenant, group
	arrivalToEval  prometheus.Histogram
	batches        *prometheus.CounterVec // outcome
	samples        *prometheus.CounterVec // outcome
	dlq            prometheus.Counter
	windowSeries   prometheus.GaugeFunc
	newestServed   prometheus.CounterFunc
	newestRead     prometheus.CounterFunc
	truncations    prometheus.Counter
	truncateFailed prometheus.Counter
	alertsSent     *prometheus.CounterVec // alertmanager
	alertsFailed   *prometheus.CounterVec // alertmanager
	alertsDropped  *prometheus.CounterVec // alertmanager
	alertLatency   *prometheus.HistogramVec
	published      *prometheus.CounterVec // topic
	publishFailed  *prometheus.CounterVec // topic
	publishDropped *prometheus.CounterVec // topic
	reloads        *prometheus.CounterVec // trigger, result
	groups         prometheus.Gauge
	caughtUp       prometheus.Gauge
}

var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

func newMetrics(reg prometheus.Registerer, win *window) *metrics {
	f := promauto.With(reg)
	return &metrics{
		evaluations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_group_evaluations_total",
			Help: "Rule group evaluations by trigger: data (a batch touched a selected series), tick (the group interval), restore (over the replayed window at start).",
		}, []string{"tenant", "group", "trigger"}),
		evalDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_ruler_group_evaluation_duration_seconds",
			Help:    "Time to evaluate all rules of a group once.",
			Buckets: latencyBuckets,
		}, []string{"tenant", "group"}),
		arrivalToEval: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tmaflow_ruler_arrival_to_evaluation_seconds",
			Help:    "From the received-at time of the first batch triggering an evaluation to the evaluation's start.",
			Buckets: latencyBuckets,
		}),
		batches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_batches_total",
			Help: "Records of topic-metrics by outcome: stored (in the window), skipped (a tenant of another shard), invalid (sent to topic-dlq).",
		}, []string{"outcome"}),
		samples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_samples_total",
			Help: "Samples of topic-metrics by outcome: appended, too_old (before the window), refused (out of order beyond the window, duplicate timestamp with another value; the persister dead-letters those).",
		}, []string{"outcome"}),
		dlq: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_ruler_dead_letters_total",
			Help: "Undecodable records of topic-metrics sent to topic-dlq.",
		}),
		windowSeries: f.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tmaflow_ruler_window_series",
			Help: "Series in the in-memory window.",
		}, func() float64 { return float64(win.NumSeries()) }),
		newestServed: selectorSeries(f, "newest", &win.latest.served),
		newestRead:   selectorSeries(f, "head", &win.latest.read),
		truncations: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_ruler_window_truncations_total",
			Help: "Times samples older than the window were dropped from memory.",
		}),
		truncateFailed: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_ruler_window_truncation_failures_total",
			Help: "Failed truncations of the window.",
		}),
		alertsSent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_alerts_sent_total",
			Help: "Alerts accepted by an Alertmanager (firing, resent and resolved).",
		}, []string{"alertmanager"}),
		alertsFailed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_alert_send_failures_total",
			Help: "Failed deliveries of alerts to an Alertmanager; they are retried with backoff.",
		}, []string{"alertmanager"}),
		alertsDropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_alerts_dropped_total",
			Help: "Alerts dropped because the queue for an Alertmanager was full (or on shutdown before delivery).",
		}, []string{"alertmanager"}),
		alertLatency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_ruler_alert_delivery_duration_seconds",
			Help:    "From the evaluation producing an alert to its acceptance by an Alertmanager.",
			Buckets: latencyBuckets,
		}, []string{"alertmanager"}),
		published: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_published_total",
			Help: "Records published: alert state changes (topic-alerts), recording-rule results (topic-samples), dead letters (topic-dlq).",
		}, []string{"topic"}),
		publishFailed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_publish_failures_total",
			Help: "Failed publishes; they are retried with backoff.",
		}, []string{"topic"}),
		publishDropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_publish_dropped_total",
			Help: "Records not published because the outgoing queue was full or the ruler stopped before the broker took them.",
		}, []string{"topic"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_ruler_rule_reloads_total",
			Help: "Rule reloads by trigger (start, signal, file) and result (success, failure).",
		}, []string{"trigger", "result"}),
		groups: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_ruler_rule_groups",
			Help: "Rule groups loaded.",
		}),
		caughtUp: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_ruler_caught_up",
			Help: "1 once the window was replayed from topic-metrics and alert state restored.",
		}),
	}
}

// selectorSeries counts the series of rules' instant selectors read from
// source (newest or head).
func selectorSeries(f promauto.Factory, source string, n *atomic.Int64) prometheus.CounterFunc {
	return f.NewCounterFunc(prometheus.CounterOpts{
		Name:        "tmaflow_ruler_instant_selector_series_total",
		Help:        "Series selected by rules' instant selectors: source newest (their newest sample, kept at append), head (decoded from the window's chunks: a sample after the evaluation time, or a series the newest-sample cache does not know).",
		ConstLabels: prometheus.Labels{"source": source},
	}, func() float64 { return float64(n.Load()) })
}
