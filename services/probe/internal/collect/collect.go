// Package collect holds the probe's collectors: host metrics from /proc
// and /sys named as node_exporter names them, scrapes of local
// Prometheus/OpenMetrics endpoints, and commands or files that print the
// text format. A collector returns one sampling's series, every sample
// stamped with the sampling time it is given.
package collect

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// Collector samples once.
type Collector interface {
	Collect(ctx context.Context, now time.Time) ([]samples.Series, error)
}

// Func adapts a function to Collector.
type Func func(ctx context.Context, now time.Time) ([]samples.Series, error)

// Collect calls f.
func (f Func) Collect(ctx context.Context, now time.Time) ([]samples.Series, error) {
	return f(ctx, now)
}

// builder appends single-sample series stamped at one time. Labels and
// samples are carved out of shared chunks: a sampling every 100 ms then
// costs a few allocations instead of two per series.
type builder struct {
	t      int64
	series []samples.Series
	labels []samples.Label
	smps   []samples.Sample
}

// builderChunk is how many labels or samples one allocation holds.
const builderChunk = 256

// add appends name{labels...} = v; labels are name/value pairs.
func (b *builder) add(name string, v float64, labels ...string) {
	n := 1 + len(labels)/2
	if cap(b.labels)-len(b.labels) < n {
		b.labels = make([]samples.Label, 0, max(builderChunk, n))
	}
	start := len(b.labels)
	b.labels = append(b.labels, samples.Label{Name: "__name__", Value: name})
	for i := 0; i+1 < len(labels); i += 2 {
		b.labels = append(b.labels, samples.Label{Name: labels[i], Value: labels[i+1]})
	}
	// Full slice expressions: appending to one series' labels (extra
	// labels) must not overwrite the next series'.
	ls := b.labels[start:len(b.labels):len(b.labels)]
	SortLabels(ls)
	if cap(b.smps) == len(b.smps) {
		b.smps = make([]samples.Sample, 0, builderChunk)
	}
	b.smps = append(b.smps, samples.Sample{TimestampMs: b.t, Value: v})
	smp := b.smps[len(b.smps)-1 : len(b.smps) : len(b.smps)]
	if b.series == nil {
		b.series = make([]samples.Series, 0, builderChunk)
	}
	b.series = append(b.series, samples.Series{Labels: ls, Samples: smp})
}

// SortLabels sorts labels by name, as series carry them.
func SortLabels(ls []samples.Label) {
	slices.SortFunc(ls, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
}

// WithLabels adds extra (sorted) labels to every series that does not
// have them already, in place.
func WithLabels(series []samples.Series, extra []samples.Label) {
	if len(extra) == 0 {
		return
	}
	for i := range series {
		ls := series[i].Labels
		for _, e := range extra {
			if !slices.ContainsFunc(ls, func(l samples.Label) bool { return l.Name == e.Name }) {
				ls = append(ls, e)
			}
		}
		SortLabels(ls)
		series[i].Labels = ls
	}
}

// MetricName is the value of __name__ ("" without one). pkg/ingest has
// one too; importing that package would link its Prometheus parsers.
func MetricName(ls []samples.Label) string {
	for _, l := range ls {
		if l.Name == "__name__" {
			return l.Value
		}
	}
	return ""
}
