package registry

import (
	"fmt"
	"strings"

	"github.com/tmaflow/tmaflow/pkg/tma"
)

// Kind is the Prometheus metric type of a measurement.
type Kind string

// Kinds of measurements.
const (
	KindGauge   Kind = "gauge"
	KindCounter Kind = "counter"
)

// Series names of data whose description the registry does not know.
const (
	GenericMeasurement = "tma_measurement"
	GenericEvent       = "tma_event"
)

// Labels the labeler sets on series made from TMA messages. Resources'
// extra labels may not use them.
const (
	LabelResource      = "resource"
	LabelResourceID    = "resource_id"
	LabelProbe         = "probe"
	LabelProbeID       = "probe_id"
	LabelDescriptionID = "description_id"
	LabelTenant        = "tenant"
)

// reservedLabel reports whether name is set by the labeler itself.
func reservedLabel(name string) bool {
	switch name {
	case LabelResource, LabelResourceID, LabelProbe, LabelProbeID, LabelDescriptionID, LabelTenant:
		return true
	}
	return false
}

// MetricName derives a description's series name the Prometheus way:
// the name with characters outside [a-zA-Z0-9_:] replaced by _, then the
// unit as a suffix (unless already there), then _total for counters and
// _event for events. A name that already ends in _total or _event keeps a
// single one, after the unit: "requests_total" in bytes is
// requests_bytes_total.
func MetricName(d Description) string {
	base := sanitize(d.Name)
	var suffix string
	switch {
	case d.Type == tma.Event:
		suffix = "_event"
	case d.Kind == KindCounter:
		suffix = "_total"
	}
	if suffix != "" {
		base = strings.TrimSuffix(base, suffix)
	}
	if d.Unit != "" && !strings.HasSuffix(base, "_"+d.Unit) {
		base += "_" + d.Unit
	}
	return base + suffix
}

// sanitize maps a free-form name (TMA knowledge bases hold names like
// "CPU usage") onto the metric name charset.
func sanitize(name string) string {
	var b strings.Builder
	b.Grow(len(name) + 1)
	underscore := false
	for i, c := range name {
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		switch {
		case !ok || c == '_':
			if !underscore && b.Len() > 0 {
				b.WriteByte('_')
			}
			underscore = true
		default:
			if i == 0 && c >= '0' && c <= '9' {
				b.WriteByte('_')
			}
			b.WriteRune(c)
			underscore = false
		}
	}
	s := strings.TrimRight(b.String(), "_")
	if s == "" {
		return "_"
	}
	return s
}

// ValidMetricName reports whether s is a Prometheus metric name in the
// classic charset, which every tool in the ecosystem accepts unquoted.
func ValidMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

// NormalizeUnit turns a unit as knowledge bases and UCUM write it ("%",
// "ms", "By/s", "°C") into the word Prometheus names use (percent,
// milliseconds, bytes_per_second, celsius). Words pass unchanged; anything
// else outside [a-zA-Z0-9_] is an error. Values are never scaled: "ms"
// stays milliseconds rather than becoming seconds.
func NormalizeUnit(u string) (string, error) {
	u = strings.TrimSpace(u)
	if u == "" || u == "1" {
		return "", nil
	}
	num, den, per := strings.Cut(u, "/")
	n, err := unitWord(num, u)
	if err != nil || !per {
		return n, err
	}
	d, err := unitWord(den, u)
	if err != nil {
		return "", err
	}
	// Rates read per second, per hour: the singular.
	switch d {
	case "seconds", "minutes", "hours", "days":
		d = strings.TrimSuffix(d, "s")
	}
	if n == "" {
		return "per_" + d, nil
	}
	return n + "_per_" + d, nil
}

func unitWord(w, whole string) (string, error) {
	switch strings.TrimSpace(w) {
	case "1":
		return "", nil
	case "%":
		return "percent", nil
	case "ns":
		return "nanoseconds", nil
	case "us", "µs", "μs":
		return "microseconds", nil
	case "ms":
		return "milliseconds", nil
	case "s", "sec":
		return "seconds", nil
	case "min":
		return "minutes", nil
	case "h":
		return "hours", nil
	case "d":
		return "days", nil
	case "B", "By":
		return "bytes", nil
	case "kB", "KB", "kBy":
		return "kilobytes", nil
	case "MB", "MBy":
		return "megabytes", nil
	case "GB", "GBy":
		return "gigabytes", nil
	case "KiB", "KiBy":
		return "kibibytes", nil
	case "MiB", "MiBy":
		return "mebibytes", nil
	case "GiB", "GiBy":
		return "gibibytes", nil
	case "bit":
		return "bits", nil
	case "Hz":
		return "hertz", nil
	case "°C", "Cel", "degC":
		return "celsius", nil
	case "°F", "degF":
		return "fahrenheit", nil
	case "V":
		return "volts", nil
	case "A":
		return "amperes", nil
	case "W":
		return "watts", nil
	case "J":
		return "joules", nil
	}
	w = strings.TrimSpace(w)
	if w == "" {
		return "", fmt.Errorf("invalid unit %q: empty part around /", whole)
	}
	for _, c := range w {
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			continue
		}
		return "", fmt.Errorf("invalid unit %q: want a word of [a-zA-Z0-9_] or a known symbol (%%, ms, s, B, By/s, °C …)", whole)
	}
	return w, nil
}
