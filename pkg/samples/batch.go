// Package samples is the sample batch of topic-samples and topic-metrics
// (schemas/sample_batch.avsc): its Go model and its Avro single-object
// encoding.
package samples

// Source values of a batch.
const (
	SourceTMA         = "tma"
	SourceRemoteWrite = "remote_write"
	SourceOpenMetrics = "openmetrics"
	SourceMQTT        = "mqtt"
	SourceRule        = "rule"
)

// MetricType mirrors the Avro enum io.tmaflow.MetricType (the metric types
// of Prometheus remote-write metadata).
type MetricType string

// Metric types.
const (
	Unknown        MetricType = "UNKNOWN"
	Counter        MetricType = "COUNTER"
	Gauge          MetricType = "GAUGE"
	Histogram      MetricType = "HISTOGRAM"
	GaugeHistogram MetricType = "GAUGEHISTOGRAM"
	Summary        MetricType = "SUMMARY"
	Info           MetricType = "INFO"
	StateSet       MetricType = "STATESET"
)

// Batch is labelled samples of one tenant from one source.
type Batch struct {
	Tenant string
	Source string
	Series []Series
}

// Series is one time series: its labels (including __name__, sorted by
// name, names unique) and its samples in timestamp order.
type Series struct {
	Labels   []Label
	Samples  []Sample
	Metadata *Metadata // nil when nothing is known
}

// Label is one label pair.
type Label struct {
	Name  string
	Value string
}

// Sample is one value at a Unix time in milliseconds.
type Sample struct {
	TimestampMs int64
	Value       float64
}

// Metadata is what is known about a series' metric.
type Metadata struct {
	Type MetricType
	Unit string
	Help string
}
