package kafka

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type publisherMetrics struct {
	records  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	batch    *prometheus.HistogramVec
}

// newPublisherMetrics registers on reg; a nil reg leaves them unregistered.
// Two publishers on one registry need a wrapped registerer
// (prometheus.WrapRegistererWith) or they collide.
func newPublisherMetrics(reg prometheus.Registerer) *publisherMetrics {
	f := promauto.With(reg)
	return &publisherMetrics{
		records: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_kafka_published_records_total",
			Help: "Records the broker acknowledged.",
		}, []string{"topic"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_kafka_publish_errors_total",
			Help: "Records that failed to publish.",
		}, []string{"topic"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_kafka_publish_duration_seconds",
			Help:    "Time from Publish to the broker's acknowledgement of all its records.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"topic"}),
		batch: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_kafka_produce_batch_records",
			Help:    "Records per produce request: concurrent publishes share batches.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}, []string{"topic"}),
	}
}

type subscriberMetrics struct {
	consumed   *prometheus.CounterVec
	nacked     *prometheus.CounterVec
	commitErrs *prometheus.CounterVec
	rebalances *prometheus.CounterVec
	lag        *prometheus.GaugeVec
}

func newSubscriberMetrics(reg prometheus.Registerer) *subscriberMetrics {
	f := promauto.With(reg)
	labels := []string{"topic", "group"}
	return &subscriberMetrics{
		consumed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_kafka_consumed_records_total",
			Help: "Records acknowledged by their handler.",
		}, labels),
		nacked: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_kafka_nacked_records_total",
			Help: "Negative acknowledgements; each one redelivers the record.",
		}, labels),
		commitErrs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_kafka_commit_errors_total",
			Help: "Failed offset commits.",
		}, labels),
		rebalances: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_kafka_group_generations_total",
			Help: "Consumer group generations joined.",
		}, labels),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmaflow_kafka_consumer_lag_records",
			Help: "Records behind the partition end when the last record was acknowledged.",
		}, []string{"topic", "group", "partition"}),
	}
}
