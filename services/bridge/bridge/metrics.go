package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	received     *prometheus.CounterVec
	acked        *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	throttled    *prometheus.CounterVec
	refused      *prometheus.CounterVec
	inflight     prometheus.Gauge
	publishFails prometheus.Counter
	batchSize    prometheus.Histogram
	publish      prometheus.Histogram
	clients      prometheus.Gauge
	connected    prometheus.Gauge
	reconnects   prometheus.Counter
	stalls       prometheus.Counter
	alerts       *prometheus.CounterVec
	brokerUp     prometheus.Gauge
	reloads      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_bridge_received_messages_total",
			Help: "MQTT messages received, by tenant.",
		}, []string{"tenant"}),
		acked: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_bridge_acked_messages_total",
			Help: "MQTT messages acknowledged after the bus stored them (dead letters included), by tenant.",
		}, []string{"tenant"}),
		deadLettered: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_bridge_dead_lettered_messages_total",
			Help: "MQTT messages sent to topic-dlq (undecodable, no route), by tenant.",
		}, []string{"tenant"}),
		throttled: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_bridge_throttled_messages_total",
			Help: "MQTT messages held back by the tenant's messages/s limit, by tenant.",
		}, []string{"tenant"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_bridge_refused_total",
			Help: "Refused MQTT operations: connect (credentials), publish and subscribe (ACL).",
		}, []string{"operation"}),
		inflight: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_bridge_inflight_messages",
			Help: "MQTT messages waiting for the bus (not yet acknowledged to their client).",
		}),
		publishFails: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_bridge_publish_failures_total",
			Help: "Bus publishes (one per batch and topic) that failed; their messages are retried, their clients not acknowledged meanwhile.",
		}),
		batchSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tmaflow_bridge_publish_batch_messages",
			Help:    "MQTT messages per bus batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}),
		publish: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tmaflow_bridge_publish_duration_seconds",
			Help:    "Time for the bus to acknowledge a batch.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
		clients: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_bridge_mqtt_clients",
			Help: "MQTT clients connected to the embedded broker.",
		}),
		connected: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_bridge_external_connected",
			Help: "1 while connected to the external MQTT broker.",
		}),
		reconnects: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_bridge_external_connects_total",
			Help: "Connections (first and re-) to the external MQTT broker; each resubscribes.",
		}),
		stalls: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_bridge_stalls_total",
			Help: "Times connected subscriptions delivered nothing for the stall timeout and were renewed.",
		}),
		alerts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_bridge_alerts_published_total",
			Help: "Alerts published to MQTT, by state (firing: retained alert, resolved: retained message cleared).",
		}, []string{"state"}),
		brokerUp: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_bridge_bus_up",
			Help: "1 while the bus answers pings.",
		}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_bridge_reloads_total",
			Help: "Reloads of the mapping and registry, by result.",
		}, []string{"result"}),
	}
}
