package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// Payload formats of a route.
const (
	FormatTMA         = "tma"         // TMA JSON → topic-monitor
	FormatPrometheus  = "prometheus"  // Prometheus text 0.0.4 → topic-samples
	FormatOpenMetrics = "openmetrics" // OpenMetrics 1.0 → topic-samples
	FormatNumber      = "number"      // one plain number → topic-samples
	FormatJSON        = "json"        // JSON with field paths (mqtt2prometheus style) → topic-samples
)

// Mapping is the bridge's mapping file: per tenant, the topic prefix its
// devices may publish under and the routes from topic filters to formats.
type Mapping struct {
	Tenants map[string]*TenantMapping `yaml:"tenants"`
}

// TenantMapping is one tenant's part of the mapping.
type TenantMapping struct {
	// Prefix is the topic prefix the tenant's devices publish under
	// (default "<tenant>/"); every route's filter must lie under it.
	Prefix string   `yaml:"prefix"`
	Routes []*Route `yaml:"routes"`
}

// Route maps the topics one filter matches to a format and labels.
type Route struct {
	// Topic is an MQTT filter whose wildcards may be named: "+site"
	// captures one level as the label site, "#rest" the remaining levels,
	// "+__name__" the metric name of a number.
	Topic  string            `yaml:"topic"`
	Format string            `yaml:"format"`
	Metric string            `yaml:"metric"` // metric name of a number
	Type   string            `yaml:"type"`   // gauge or counter, for a number
	Labels map[string]string `yaml:"labels"`
	// Metrics are the fields of a JSON payload, as mqtt2prometheus
	// configures them.
	Metrics []*JSONMetric `yaml:"metrics"`

	levels []level
	labels []samples.Label // Labels, sorted
}

// JSONMetric is one field of a JSON payload (mqtt2prometheus's metrics
// entries).
type JSONMetric struct {
	// MQTTName is the field: a key, or a dotted path into nested objects.
	MQTTName    string            `yaml:"mqtt_name"`
	PromName    string            `yaml:"prom_name"`
	Type        string            `yaml:"type"`
	Help        string            `yaml:"help"`
	ConstLabels map[string]string `yaml:"const_labels"`

	path   []string
	labels []samples.Label
}

// level is one level of a route's filter.
type level struct {
	literal string
	// wildcard is '+' or '#' (0 for a literal); name is what it captures
	// as ("" for an anonymous wildcard).
	wildcard byte
	name     string
}

// LoadMapping reads and checks a mapping file.
func LoadMapping(path string) (*Mapping, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read mapping: %w", err)
	}
	m, err := ParseMapping(b)
	if err != nil {
		return nil, fmt.Errorf("read mapping %s: %w", path, err)
	}
	return m, nil
}

// ParseMapping decodes and checks a mapping document; unknown fields are
// errors, so a typo does not silently route nothing.
func ParseMapping(b []byte) (*Mapping, error) {
	var m Mapping
	d := yaml.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if len(m.Tenants) == 0 {
		return nil, errors.New("no tenants")
	}
	var errs []error
	for name, t := range m.Tenants {
		if t == nil {
			errs = append(errs, fmt.Errorf("tenant %s: empty", name))
			continue
		}
		if err := t.compile(name); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &m, nil
}

func (t *TenantMapping) compile(tenant string) error {
	if tenant == "" || strings.ContainsAny(tenant, "/+#") {
		return errors.New("a tenant name must be non-empty without /, + or #")
	}
	if t.Prefix == "" {
		t.Prefix = tenant + "/"
	}
	if !strings.HasSuffix(t.Prefix, "/") || strings.ContainsAny(t.Prefix, "+#") || strings.HasPrefix(t.Prefix, "$") {
		return fmt.Errorf("prefix %q: want topic levels ending in / without wildcards or $", t.Prefix)
	}
	if len(t.Routes) == 0 {
		return errors.New("no routes")
	}
	var errs []error
	for i, r := range t.Routes {
		if r == nil {
			errs = append(errs, fmt.Errorf("routes[%d]: empty", i))
			continue
		}
		if err := r.compile(t.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("routes[%d] (%s): %w", i, r.Topic, err))
		}
	}
	return errors.Join(errs...)
}

func (r *Route) compile(prefix string) error {
	if !strings.HasPrefix(r.Topic, prefix) {
		return fmt.Errorf("topic must start with the tenant's prefix %q", prefix)
	}
	levels, err := parseFilter(r.Topic)
	if err != nil {
		return err
	}
	r.levels = levels
	captures := map[string]bool{}
	for _, l := range levels {
		if l.name != "" {
			captures[l.name] = true
		}
	}
	if r.labels, err = labelList(r.Labels); err != nil {
		return err
	}
	for _, l := range r.labels {
		if captures[l.Name] {
			return fmt.Errorf("label %s is both captured and given in labels", l.Name)
		}
	}
	switch r.Format {
	case FormatNumber:
		if (r.Metric == "") == !captures[model.MetricNameLabel] {
			return errors.New("format number needs metric, or a +__name__ level, not both")
		}
		if r.Metric != "" && !model.UTF8Validation.IsValidMetricName(r.Metric) {
			return fmt.Errorf("invalid metric name %q", r.Metric)
		}
		if _, err := metricType(r.Type); err != nil {
			return err
		}
	case FormatJSON:
		if len(r.Metrics) == 0 {
			return errors.New("format json needs metrics")
		}
		for i, jm := range r.Metrics {
			if err := jm.compile(); err != nil {
				return fmt.Errorf("metrics[%d]: %w", i, err)
			}
		}
	case FormatTMA, FormatPrometheus, FormatOpenMetrics:
	default:
		return fmt.Errorf("format %q: want one of %s, %s, %s, %s, %s", r.Format, FormatTMA, FormatPrometheus, FormatOpenMetrics, FormatNumber, FormatJSON)
	}
	if r.Format != FormatNumber && (r.Metric != "" || r.Type != "") {
		return fmt.Errorf("metric and type are for format number, not %s", r.Format)
	}
	if r.Format != FormatJSON && len(r.Metrics) > 0 {
		return fmt.Errorf("metrics are for format json, not %s", r.Format)
	}
	if r.Format == FormatTMA && (len(captures) > 0 || len(r.labels) > 0) {
		// TMA messages are forwarded byte for byte; topic labels come from
		// the labeler's rules over the mqtt-topic header instead.
		return errors.New("format tma takes no labels or named wildcards: use the registry's label_rules on __mqtt_topic__")
	}
	if r.Format != FormatNumber && captures[model.MetricNameLabel] {
		return fmt.Errorf("+__name__ is for format number, not %s", r.Format)
	}
	return nil
}

func (jm *JSONMetric) compile() error {
	if jm.MQTTName == "" {
		return errors.New("mqtt_name is required")
	}
	jm.path = strings.Split(jm.MQTTName, ".")
	if jm.PromName == "" || !model.UTF8Validation.IsValidMetricName(jm.PromName) {
		return fmt.Errorf("prom_name %q: want a metric name", jm.PromName)
	}
	if _, err := metricType(jm.Type); err != nil {
		return err
	}
	var err error
	jm.labels, err = labelList(jm.ConstLabels)
	return err
}

// metricType maps a configured type to the batch's ("" is gauge, as in
// mqtt2prometheus).
func metricType(t string) (samples.MetricType, error) {
	switch strings.ToLower(t) {
	case "", "gauge":
		return samples.Gauge, nil
	case "counter":
		return samples.Counter, nil
	}
	return "", fmt.Errorf("type %q: want gauge or counter", t)
}

// labelList checks configured labels and returns them sorted.
func labelList(m map[string]string) ([]samples.Label, error) {
	out := make([]samples.Label, 0, len(m))
	for k, v := range m {
		if !validLabelName(k) {
			return nil, fmt.Errorf("invalid label name %q", k)
		}
		out = append(out, samples.Label{Name: k, Value: v})
	}
	slices.SortFunc(out, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// validLabelName refuses reserved __ names: they are the labeler's.
func validLabelName(s string) bool {
	return model.LegacyValidation.IsValidLabelName(s) && !strings.HasPrefix(s, "__")
}

// parseFilter splits a filter with named wildcards into levels.
func parseFilter(f string) ([]level, error) {
	parts := strings.Split(f, "/")
	out := make([]level, len(parts))
	seen := map[string]bool{}
	for i, p := range parts {
		switch {
		case p == "":
			if i == len(parts)-1 {
				return nil, errors.New("filter must not end with /")
			}
			out[i] = level{}
		case p[0] == '+' || p[0] == '#':
			name := p[1:]
			if p[0] == '#' && i != len(parts)-1 {
				return nil, errors.New("# must be the last level")
			}
			if name != "" && name != model.MetricNameLabel && !validLabelName(name) {
				return nil, fmt.Errorf("wildcard %q: %q is not a label name", p, name)
			}
			if name != "" && seen[name] {
				return nil, fmt.Errorf("wildcard name %q used twice", name)
			}
			seen[name] = true
			out[i] = level{wildcard: p[0], name: name}
		case strings.ContainsAny(p, "+#"):
			return nil, fmt.Errorf("level %q: a wildcard must be a whole level", p)
		default:
			out[i] = level{literal: p}
		}
	}
	return out, nil
}

// mqttFilter is the route's filter with the wildcard names removed, as
// brokers take it.
func (r *Route) mqttFilter() string {
	parts := make([]string, len(r.levels))
	for i, l := range r.levels {
		if l.wildcard != 0 {
			parts[i] = string(l.wildcard)
		} else {
			parts[i] = l.literal
		}
	}
	return strings.Join(parts, "/")
}

// match reports whether topic matches the route's filter and appends the
// named captures to dst.
func (r *Route) match(topic string, dst []samples.Label) ([]samples.Label, bool) {
	parts := strings.Split(topic, "/")
	for i, l := range r.levels {
		if l.wildcard == '#' {
			// "a/#" also matches "a" (the parent level), as in MQTT.
			if l.name != "" && i < len(parts) {
				dst = append(dst, samples.Label{Name: l.name, Value: strings.Join(parts[i:], "/")})
			}
			return dst, true
		}
		if i >= len(parts) {
			return dst, false
		}
		switch {
		case l.wildcard == '+':
			if l.name != "" {
				dst = append(dst, samples.Label{Name: l.name, Value: parts[i]})
			}
		case parts[i] != l.literal:
			return dst, false
		}
	}
	return dst, len(parts) == len(r.levels)
}

// route finds the first route of the tenant matching topic.
func (t *TenantMapping) route(topic string, captures []samples.Label) (*Route, []samples.Label) {
	for _, r := range t.Routes {
		if c, ok := r.match(topic, captures[:0]); ok {
			return r, c
		}
	}
	return nil, captures[:0]
}

// tenantOf finds the tenant whose prefix is the longest one topic starts
// with ("" for none), for clients without a tenant of their own.
func (m *Mapping) tenantOf(topic string) string {
	best := ""
	for name, t := range m.Tenants {
		if strings.HasPrefix(topic, t.Prefix) && (best == "" || len(t.Prefix) > len(m.Tenants[best].Prefix)) {
			best = name
		}
	}
	return best
}

// filters lists every route's MQTT filter with its tenant, for
// subscribing at an external broker.
func (m *Mapping) filters() map[string]string {
	out := map[string]string{}
	for name, t := range m.Tenants {
		for _, r := range t.Routes {
			out[r.mqttFilter()] = name
		}
	}
	return out
}
