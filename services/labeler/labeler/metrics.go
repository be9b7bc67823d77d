package labeler

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Values of the input label.
const (
	inputTMA     = "tma"
	inputSamples = "samples"
)

type metrics struct {
	series      *prometheus.CounterVec
	samples     *prometheus.CounterVec
	batches     *prometheus.CounterVec
	unknown     *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	undecodable *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	lastReload  prometheus.Gauge
	entries     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		series: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_labeler_series_total",
			Help: "Series published to topic-metrics (one per series and record), by input: tma (topic-monitor) or samples (topic-samples).",
		}, []string{"input"}),
		samples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_labeler_samples_total",
			Help: "Samples published to topic-metrics, by input.",
		}, []string{"input"}),
		batches: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_labeler_batches_total",
			Help: "Enriched batches (records) published to topic-metrics, by input.",
		}, []string{"input"}),
		unknown: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_labeler_unknown_id_observations_total",
			Help: "TMA observations whose probe, resource or description id the registry does not know; they are published under generic names with id labels.",
		}, []string{"kind"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_labeler_dropped_series_total",
			Help: "Series not published, by reason: label_rule (a keep/drop rule) or invalid (no metric name or a repeated label name after the rules).",
		}, []string{"input", "reason"}),
		undecodable: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_labeler_undecodable_records_total",
			Help: "Consumed records that could not be decoded; they go to the dead-letter topic with the reason.",
		}, []string{"topic"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_labeler_registry_reloads_total",
			Help: "Registry reloads by trigger (signal, file) and result (success, failure, unchanged).",
		}, []string{"trigger", "result"}),
		lastReload: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_labeler_registry_last_load_timestamp_seconds",
			Help: "When the registry in force was loaded.",
		}),
		entries: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmaflow_labeler_registry_entries",
			Help: "Entries of the registry in force, by kind.",
		}, []string{"kind"}),
	}
	// Zero series exist from the start, so rate() and alerts see them.
	for _, in := range []string{inputTMA, inputSamples} {
		m.series.WithLabelValues(in)
		m.samples.WithLabelValues(in)
		m.batches.WithLabelValues(in)
		m.dropped.WithLabelValues(in, "label_rule")
		m.dropped.WithLabelValues(in, "invalid")
	}
	for _, k := range []string{"probe", "resource", "description"} {
		m.unknown.WithLabelValues(k)
	}
	return m
}

func (m *metrics) loaded(s *snapshot) {
	m.lastReload.Set(float64(s.loadedAt.UnixNano()) / 1e9)
	m.entries.WithLabelValues("probes").Set(float64(len(s.file.Probes)))
	m.entries.WithLabelValues("resources").Set(float64(len(s.file.Resources)))
	m.entries.WithLabelValues("descriptions").Set(float64(len(s.file.Descriptions)))
	m.entries.WithLabelValues("label_rules").Set(float64(len(s.file.LabelRules)))
}
