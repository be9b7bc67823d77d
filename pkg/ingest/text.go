package ingest

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// TextFormat is the exposition format of a pushed body.
type TextFormat int

const (
	FormatText        TextFormat = iota // Prometheus text 0.0.4
	FormatOpenMetrics                   // OpenMetrics 1.0
)

func (f TextFormat) String() string {
	if f == FormatOpenMetrics {
		return "openmetrics"
	}
	return "prometheus text"
}

// TextFormatOf reads the format from the Content-Type: Prometheus text
// when absent or text/plain (version 0.0.4 or none), OpenMetrics for
// application/openmetrics-text (version 1.0.0, 0.0.1 or none).
func TextFormatOf(contentType string) (TextFormat, error) {
	if contentType == "" {
		return FormatText, nil
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, fmt.Errorf("content type %q: %w", contentType, err)
	}
	v := params["version"]
	switch {
	case mt == "text/plain" && (v == "" || v == "0.0.4"):
		return FormatText, nil
	case mt == "application/openmetrics-text" && (v == "" || v == "1.0.0" || v == "0.0.1"):
		return FormatOpenMetrics, nil
	}
	return 0, fmt.Errorf("content type %q: want text/plain; version=0.0.4 or application/openmetrics-text; version=1.0.0", contentType)
}

// ErrNativeHistogramText refuses a native histogram in a text body.
var ErrNativeHistogramText = errors.New("native histograms are not supported yet: nothing was accepted")

// textSeries collects the samples of a pushed body by series.
type textSeries struct {
	byHash map[uint64][]int
	lsets  []labels.Labels
	series []samples.Series
	n      int
}

// ParseText parses a Prometheus text or OpenMetrics body into series,
// extra (sorted, unique) labels added to every series; a series given a
// different value for an extra label is refused. Samples without a
// timestamp get nowMs. Any problem refuses the whole body.
func ParseText(f TextFormat, body []byte, nowMs int64, extra []samples.Label) (series []samples.Series, n, exemplars int, err error) {
	st := labels.NewSymbolTable()
	var p textparse.Parser
	if f == FormatOpenMetrics {
		p = textparse.NewOpenMetricsParser(body, st)
	} else {
		p = textparse.NewPromParser(body, st, false)
	}
	meta := map[string]*samples.Metadata{}
	metaOf := func(name []byte) *samples.Metadata {
		m, ok := meta[string(name)]
		if !ok {
			m = &samples.Metadata{Type: samples.Unknown}
			meta[string(name)] = m
		}
		return m
	}
	out := textSeries{byHash: map[uint64][]int{}}
	var (
		lset labels.Labels
		lb   = labels.NewBuilder(labels.EmptyLabels())
		ex   exemplar.Exemplar
	)
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("parse %s: %w", f, err)
		}
		switch e {
		case textparse.EntryType:
			name, typ := p.Type()
			metaOf(name).Type = textMetricType(typ)
		case textparse.EntryHelp:
			name, help := p.Help()
			metaOf(name).Help = string(help)
		case textparse.EntryUnit:
			name, unit := p.Unit()
			metaOf(name).Unit = string(unit)
		case textparse.EntryHistogram:
			raw, _, _, _ := p.Histogram()
			return nil, 0, 0, fmt.Errorf("parse %s: %s: %w", f, raw, ErrNativeHistogramText)
		case textparse.EntrySeries:
			raw, ts, v := p.Series()
			p.Labels(&lset)
			t := nowMs
			if ts != nil {
				t = *ts
			}
			if name, dup := lset.HasDuplicateLabelNames(); dup {
				return nil, 0, 0, fmt.Errorf("parse %s: %s: label name %q is repeated", f, raw, name)
			}
			if len(extra) > 0 {
				lb.Reset(lset)
				for _, l := range extra {
					if have := lset.Get(l.Name); have != "" && have != l.Value {
						return nil, 0, 0, fmt.Errorf("parse %s: %s: label %s=%q differs from %q given in the request", f, raw, l.Name, have, l.Value)
					}
					lb.Set(l.Name, l.Value)
				}
				lset = lb.Labels()
			}
			out.add(lset, samples.Sample{TimestampMs: t, Value: v})
			if p.Exemplar(&ex) {
				exemplars++
			}
		}
	}
	for i := range out.series {
		s := &out.series[i]
		if err := CheckLabels(s.Labels); err != nil {
			return nil, 0, 0, fmt.Errorf("parse %s: series %s: %w", f, ShowLabels(s.Labels), err)
		}
		slices.SortStableFunc(s.Samples, CmpSampleTime)
		for j := 1; j < len(s.Samples); j++ {
			if s.Samples[j].TimestampMs == s.Samples[j-1].TimestampMs {
				return nil, 0, 0, fmt.Errorf("parse %s: series %s: two samples at timestamp %d", f, ShowLabels(s.Labels), s.Samples[j].TimestampMs)
			}
		}
		if m := FamilyMetadata(meta, MetricName(s.Labels)); m != nil && (m.Type != samples.Unknown || m.Help != "" || m.Unit != "") {
			s.Metadata = m
		}
	}
	return out.series, out.n, exemplars, nil
}

// add appends a sample to its series, creating it at first sight.
func (t *textSeries) add(lset labels.Labels, smp samples.Sample) {
	h := lset.Hash()
	for _, i := range t.byHash[h] {
		if labels.Equal(t.lsets[i], lset) {
			t.series[i].Samples = append(t.series[i].Samples, smp)
			t.n++
			return
		}
	}
	ls := make([]samples.Label, 0, lset.Len())
	lset.Range(func(l labels.Label) {
		if l.Value != "" {
			ls = append(ls, samples.Label{Name: l.Name, Value: l.Value})
		}
	})
	t.byHash[h] = append(t.byHash[h], len(t.series))
	t.lsets = append(t.lsets, lset)
	t.series = append(t.series, samples.Series{Labels: ls, Samples: []samples.Sample{smp}})
	t.n++
}

// textMetricType maps a parsed TYPE (counter, gaugehistogram, …) to the
// batch's enum, which names the same types in upper case.
func textMetricType(t model.MetricType) samples.MetricType {
	if mt := samples.MetricType(strings.ToUpper(string(t))); mt.Valid() {
		return mt
	}
	return samples.Unknown
}
