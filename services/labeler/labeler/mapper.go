package labeler

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

// Labels label rules can read besides a series' own; like every __ label
// but __name__ they are gone after relabelling.
const (
	MetaMQTTTopic       = "__mqtt_topic__"
	MetaSource          = "__source__"
	MetaTenant          = "__tenant__"
	MetaResourceType    = "__resource_type__"
	MetaResourceAddress = "__resource_address__"
)

// LabelExportedTenant keeps a tenant label that a labelled series brought
// and that differs from its record's tenant (Prometheus's exported_ rule
// for conflicting target labels): a sender cannot pick its tenant.
const LabelExportedTenant = "exported_tenant"

// record is what a consumed record's headers tell the mapping.
type record struct {
	tenant    string
	source    string // the source header
	mqttTopic string
}

// stats counts what mapping one record did, for the metrics.
type stats struct {
	unknownProbe, unknownResource, unknownDescription int // observations
	droppedByRule, droppedInvalid                     int // series
}

// out is one batch for topic-metrics with its record key.
type out struct {
	key   []byte
	batch samples.Batch
}

// mapTMA turns one TMA message into series: one per description, a
// sample per observation. Ids the registry does not know still make
// series, under a generic name and with id labels.
func (s *snapshot) mapTMA(m *tma.Message, rec record, st *stats) []samples.Series {
	res := s.resources[m.ResourceID]
	probe := s.probes[m.ProbeID]
	// The labels every series of the message shares.
	common := make([]samples.Label, 0, 4+len(s.resourceLabels(res)))
	if probe != nil {
		common = append(common, samples.Label{Name: registry.LabelProbe, Value: probe.Name})
	} else {
		common = append(common, samples.Label{Name: registry.LabelProbeID, Value: strconv.FormatInt(m.ProbeID, 10)})
	}
	if res != nil {
		common = append(common, samples.Label{Name: registry.LabelResource, Value: res.Name})
		common = append(common, res.labels...)
	}
	common = append(common,
		samples.Label{Name: registry.LabelResourceID, Value: strconv.FormatInt(m.ResourceID, 10)},
		samples.Label{Name: registry.LabelTenant, Value: rec.tenant})
	// Sorted once here, each series' labels (the name in front) are
	// mostly sorted already, which the sort then only checks.
	sortLabels(common)

	series := make([]samples.Series, 0, len(m.Data))
	// The series of each entry of series. A message has a few dozen data
	// items at most, so a list (on the stack) beats a map.
	var keysBuf [32]seriesOf
	keys := keysBuf[:0]
	// One slab for every sample of the message; a description repeated
	// in the message may outgrow its part and reallocate.
	slab := make([]samples.Sample, 0, m.Observations())
	// One slab for every series' labels too: each takes at most the
	// common labels plus a name and a description_id.
	lslab := make([]samples.Label, 0, len(m.Data)*(len(common)+2))
	for i := range m.Data {
		d := &m.Data[i]
		n := len(d.Observations)
		if probe == nil {
			st.unknownProbe += n
		}
		if res == nil {
			st.unknownResource += n
		}
		// Two data items of one description and type in one message are one
		// series; a measurement and an event of one description are two.
		key := seriesOf{d.DescriptionID, d.Type}
		idx := slices.Index(keys, key)
		if idx < 0 {
			idx = len(series)
			keys = append(keys, key)
			var ser samples.Series
			ser, lslab = s.newTMASeries(d, common, lslab, st)
			off := len(slab)
			slab = slab[:off+n]
			ser.Samples = slab[off : off : off+n]
			series = append(series, ser)
		} else if s.descriptions[d.DescriptionID] == nil {
			st.unknownDescription += n
		}
		ser := &series[idx]
		for _, o := range d.Observations {
			ser.Samples = append(ser.Samples, samples.Sample{TimestampMs: tma.Time(o.Time).UnixMilli(), Value: o.Value})
		}
	}
	for i := range series {
		sortSamples(series[i].Samples)
	}
	return series
}

func (s *snapshot) resourceLabels(r *resource) []samples.Label {
	if r == nil {
		return nil
	}
	return r.labels
}

// newTMASeries makes the series of a data item, its labels taken from
// the front of slab's spare capacity (or allocated when it has too
// little); it returns the rest of slab.
func (s *snapshot) newTMASeries(d *tma.Data, common, slab []samples.Label, st *stats) (samples.Series, []samples.Label) {
	desc := s.descriptions[d.DescriptionID]
	n := len(common) + 2
	var ls []samples.Label
	if cap(slab)-len(slab) >= n {
		ls = slab[len(slab) : len(slab) : len(slab)+n]
		slab = slab[:len(slab)+n]
	} else {
		ls = make([]samples.Label, 0, n)
	}
	var ser samples.Series
	if desc != nil {
		name, meta := desc.series(d.Type)
		ls = append(ls, samples.Label{Name: labels.MetricName, Value: name})
		// Shared, not copied: snapshots are immutable and batches are
		// only read.
		ser.Metadata = meta
	} else {
		st.unknownDescription += len(d.Observations)
		name := registry.GenericMeasurement
		if d.Type == tma.Event {
			name = registry.GenericEvent
		}
		ls = append(ls,
			samples.Label{Name: labels.MetricName, Value: name},
			samples.Label{Name: registry.LabelDescriptionID, Value: strconv.FormatInt(d.DescriptionID, 10)})
	}
	ls = append(ls, common...)
	sortLabels(ls)
	ser.Labels = ls
	return ser, slab
}

// labelled prepares the series of a topic-samples batch: a tenant label
// that differs from the record's tenant becomes exported_tenant and the
// record's tenant is set. The series' labels are copied, so the decoder's
// memory can be reused.
func labelled(in []samples.Series, rec record) []samples.Series {
	out := make([]samples.Series, len(in))
	for i := range in {
		ls := make([]samples.Label, 0, len(in[i].Labels)+1)
		hasTenant := false
		for _, l := range in[i].Labels {
			if l.Name == registry.LabelTenant {
				if l.Value == rec.tenant {
					hasTenant = true
				} else {
					l.Name = LabelExportedTenant
				}
			}
			ls = append(ls, l)
		}
		if !hasTenant {
			ls = append(ls, samples.Label{Name: registry.LabelTenant, Value: rec.tenant})
		}
		sortLabels(ls)
		out[i] = samples.Series{Labels: ls, Samples: in[i].Samples, Metadata: in[i].Metadata}
	}
	return out
}

// finish applies the label rules, checks every series has a name and
// unique label names, and groups the series by resource into batches.
func (s *snapshot) finish(series []samples.Series, rec record, source string, st *stats, res *resource) []out {
	var lb *labels.Builder
	if len(s.rules) > 0 {
		lb = labels.NewBuilder(labels.EmptyLabels())
	}
	kept := series[:0]
	for _, ser := range series {
		if lb != nil {
			var keep bool
			if ser.Labels, keep = s.relabel(lb, ser.Labels, rec, res); !keep {
				st.droppedByRule++
				continue
			}
		}
		if !validLabels(ser.Labels) {
			st.droppedInvalid++
			continue
		}
		kept = append(kept, ser)
	}

	var outs []out
	// The ident of each batch in outs; a TMA message makes one, so a
	// list beats a map, and the ident string is built once per batch.
	var idents []ident
	var groups map[ident]int
	for _, ser := range kept {
		id := resourceOf(ser.Labels)
		i, ok := 0, false
		if groups != nil {
			i, ok = groups[id]
		} else if i = slices.Index(idents, id); i >= 0 {
			ok = true
		}
		if !ok {
			i = len(outs)
			idents = append(idents, id)
			if groups == nil && len(idents) > maxListedGroups {
				groups = make(map[ident]int, 2*len(idents))
				for j, g := range idents {
					groups[g] = j
				}
			} else if groups != nil {
				groups[id] = i
			}
			b := samples.Batch{Tenant: rec.tenant, Source: source}
			if i == 0 {
				// Usually the only batch: room for every series.
				b.Series = make([]samples.Series, 0, len(kept))
			}
			outs = append(outs, out{key: samples.MetricsKey(rec.tenant, id.String()), batch: b})
		}
		outs[i].batch.Series = append(outs[i].batch.Series, ser)
	}
	return outs
}

// maxListedGroups is the most batches finish looks up in a list.
const maxListedGroups = 8

// relabel runs the label rules over ls with the record's meta labels; it
// reports false when a rule dropped the series. The result is sorted, has
// no __ labels but __name__, no empty values, and the record's tenant.
func (s *snapshot) relabel(lb *labels.Builder, ls []samples.Label, rec record, res *resource) ([]samples.Label, bool) {
	lb.Reset(labels.EmptyLabels())
	for _, l := range ls {
		lb.Set(l.Name, l.Value)
	}
	lb.Set(MetaTenant, rec.tenant)
	lb.Set(MetaSource, rec.source)
	lb.Set(MetaMQTTTopic, rec.mqttTopic)
	if res != nil {
		lb.Set(MetaResourceType, res.Type)
		lb.Set(MetaResourceAddress, res.Address)
	}
	if !relabel.ProcessBuilder(lb, s.rules...) {
		return nil, false
	}
	out := make([]samples.Label, 0, len(ls)+2)
	lb.Range(func(l labels.Label) {
		if l.Value == "" || l.Name == registry.LabelTenant || (strings.HasPrefix(l.Name, "__") && l.Name != labels.MetricName) {
			return
		}
		out = append(out, samples.Label{Name: l.Name, Value: l.Value})
	})
	out = append(out, samples.Label{Name: registry.LabelTenant, Value: rec.tenant})
	sortLabels(out)
	return out, true
}

// identLabels are the labels resourceOf picks from, best first.
func identLabels() [5]string {
	return [...]string{registry.LabelResourceID, registry.LabelResource, "instance", "job", labels.MetricName}
}

// ident is what keys a series' batch, as "<label>=<value>": the index of
// the label in identLabels (len when none) and its value.
type ident struct {
	label int
	value string
}

func (id ident) String() string {
	if names := identLabels(); id.label < len(names) {
		return names[id.label] + "=" + id.value
	}
	return ""
}

// resourceOf picks what keys a series' batch: the resource it belongs to,
// so all series of one resource land in one partition and are appended in
// order. TMA series and recording rules over them carry resource_id;
// labelled input has resource, instance or job; the metric name is the
// last resort. Every choice is a function of the labels, so one series is
// always keyed the same.
func resourceOf(ls []samples.Label) ident {
	names := identLabels()
	id := ident{label: len(names)}
	for _, l := range ls {
		for i, n := range names[:id.label] {
			if l.Name == n {
				id = ident{label: i, value: l.Value}
				break
			}
		}
	}
	return id
}

// validLabels reports whether ls has a metric name and unique label names;
// ls is sorted.
func validLabels(ls []samples.Label) bool {
	name := false
	for i, l := range ls {
		if i > 0 && ls[i-1].Name == l.Name {
			return false
		}
		if l.Name == labels.MetricName && l.Value != "" {
			name = true
		}
	}
	return name
}

func sortLabels(ls []samples.Label) {
	slices.SortFunc(ls, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
}

// sortSamples puts samples in timestamp order, as the batch schema
// promises; probes usually send them so already.
func sortSamples(ss []samples.Sample) {
	if !slices.IsSortedFunc(ss, cmpSample) {
		slices.SortStableFunc(ss, cmpSample)
	}
}

func cmpSample(a, b samples.Sample) int { return cmp.Compare(a.TimestampMs, b.TimestampMs) }

// seriesOf identifies the series of a data item within one message.
type seriesOf struct {
	descriptionID int64
	typ           tma.DataType
}
