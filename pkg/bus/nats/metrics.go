package nats

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type publisherMetrics struct {
	records  *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newPublisherMetrics registers on reg; a nil reg leaves them unregistered.
func newPublisherMetrics(reg prometheus.Registerer) *publisherMetrics {
	f := promauto.With(reg)
	return &publisherMetrics{
		records: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_nats_published_records_total",
			Help: "Messages the stream acknowledged (PubAck), duplicates included.",
		}, []string{"topic"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_nats_publish_errors_total",
			Help: "Messages that failed to publish.",
		}, []string{"topic"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tmaflow_nats_publish_duration_seconds",
			Help:    "Time from Publish to the stream's acknowledgement of all its messages.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"topic"}),
	}
}

type subscriberMetrics struct {
	consumed *prometheus.CounterVec
	nacked   *prometheus.CounterVec
	ackErrs  *prometheus.CounterVec
	lag      *prometheus.GaugeVec
}

func newSubscriberMetrics(reg prometheus.Registerer) *subscriberMetrics {
	f := promauto.With(reg)
	labels := []string{"topic", "group"}
	return &subscriberMetrics{
		consumed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_nats_consumed_records_total",
			Help: "Messages acknowledged by their handler.",
		}, labels),
		nacked: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_nats_nacked_records_total",
			Help: "Negative acknowledgements; each one redelivers the message.",
		}, labels),
		ackErrs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_nats_ack_errors_total",
			Help: "Acknowledgements that could not be sent to the server; the message comes again after the ack wait.",
		}, labels),
		lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmaflow_nats_consumer_lag_records",
			Help: "Messages of the partition not yet delivered to the consumer when the last one was acknowledged.",
		}, []string{"topic", "group", "partition"}),
	}
}
