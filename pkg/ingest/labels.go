package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// CheckLabels validates the labels of a series as the remote write spec
// asks: names valid UTF-8 label names, sorted and unique, values valid
// UTF-8, a non-empty __name__.
func CheckLabels(ls []samples.Label) error {
	name := false
	for i, l := range ls {
		if !model.UTF8Validation.IsValidLabelName(l.Name) {
			return fmt.Errorf("invalid label name %q", l.Name)
		}
		if !utf8.ValidString(l.Value) {
			return fmt.Errorf("label %s: value is not valid UTF-8", l.Name)
		}
		if i > 0 {
			switch prev := ls[i-1].Name; {
			case prev == l.Name:
				return fmt.Errorf("label name %q is repeated", l.Name)
			case prev > l.Name:
				return fmt.Errorf("label names are not sorted: %q after %q", l.Name, prev)
			}
		}
		if l.Name == model.MetricNameLabel {
			name = l.Value != ""
		}
	}
	if !name {
		return errors.New("series has no metric name (__name__)")
	}
	return nil
}

// DropEmpty removes labels with empty values in place: an empty label is
// an absent one in Prometheus.
func DropEmpty(ls []samples.Label) []samples.Label {
	out := ls[:0]
	for _, l := range ls {
		if l.Value != "" {
			out = append(out, l)
		}
	}
	return out
}

// maxShownLabels bounds how much of a series an error message shows.
const maxShownLabels = 256

// ShowLabels renders labels as {a="b", c="d"} for error messages, cut
// after maxShownLabels bytes.
func ShowLabels(ls []samples.Label) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		if b.Len() > maxShownLabels {
			b.WriteString("…")
			break
		}
		b.WriteString(strconv.Quote(l.Name))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// metricTypes maps the MetricType enums of remote write 1.0 and 2.0, which
// number the types alike, to the batch's.
var metricTypes = [...]samples.MetricType{
	samples.Unknown, samples.Counter, samples.Gauge, samples.Histogram,
	samples.GaugeHistogram, samples.Summary, samples.Info, samples.StateSet,
}

func MetricType(i int32) samples.MetricType {
	if i < 0 || int(i) >= len(metricTypes) {
		return samples.Unknown
	}
	return metricTypes[i]
}

// familySuffixes are the sample name suffixes of a metric family whose
// metadata is given under the family's name.
var familySuffixes = [...]string{"_total", "_bucket", "_count", "_sum", "_created", "_info", "_gcount", "_gsum"}

// FamilyMetadata finds a series' metadata by its metric name, or by the
// family name its suffix belongs to.
func FamilyMetadata(meta map[string]*samples.Metadata, name string) *samples.Metadata {
	if len(meta) == 0 {
		return nil
	}
	if m, ok := meta[name]; ok {
		return m
	}
	for _, suf := range familySuffixes {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if m, ok := meta[base]; ok {
				return m
			}
		}
	}
	return nil
}

// metricName returns the value of __name__ of sorted labels.
func MetricName(ls []samples.Label) string {
	for _, l := range ls {
		if l.Name == model.MetricNameLabel {
			return l.Value
		}
	}
	return ""
}

// CmpSampleTime orders samples by timestamp.
func CmpSampleTime(a, b samples.Sample) int {
	switch {
	case a.TimestampMs < b.TimestampMs:
		return -1
	case a.TimestampMs > b.TimestampMs:
		return 1
	}
	return 0
}
