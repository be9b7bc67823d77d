package reporter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Generate queries every panel of r for the period of the run at fire;
// alerts panels reading topic-alerts read alerts (nil: they fail).
func Generate(ctx context.Context, q Querier, alerts AlertHistory, r Report, fire, now time.Time) (*Document, error) {
	start, end := r.Period.Of(fire, r.Location)
	d := &Document{
		ID:          DocumentID(r.Tenant, r.Name, start, end),
		Tenant:      r.Tenant,
		Report:      r.Name,
		Title:       r.Title,
		Schedule:    r.Schedule.String(),
		Timezone:    r.Location.String(),
		Period:      DocPeriod{Kind: r.Period.String(), Start: start.UTC(), End: end.UTC()},
		ScheduledAt: fire.UTC(),
		GeneratedAt: now.UTC(),
		Step:        r.Step.Seconds(),
	}
	g := generator{q: q, history: alerts, r: r, start: start, end: end}
	for i, p := range r.Panels {
		res, err := g.panel(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("panel %d %q: %w", i+1, p.Title, err)
		}
		d.Panels = append(d.Panels, res)
	}
	return d, nil
}

type generator struct {
	q          Querier
	history    AlertHistory
	r          Report
	start, end time.Time
}

// at is when a period's instant queries are evaluated: a millisecond
// before its end, so that a range of the period's length covers
// [start, end) as Prometheus's ranges are open on the left.
func (g generator) at() time.Time { return g.end.Add(-time.Millisecond) }

// subquery is expr over the period at the report's step.
func (g generator) subquery(expr string) string {
	return fmt.Sprintf("(%s)[%s:%s]", expr, promDuration(g.end.Sub(g.start)), promDuration(g.r.Step))
}

func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func (g generator) panel(ctx context.Context, p Panel) (PanelResult, error) {
	res := PanelResult{Type: p.Type, Title: p.Title, Query: p.Query, Objective: p.Objective}
	var err error
	switch p.Type {
	case PanelTable:
		res.Table, res.Warnings, err = g.table(ctx, p.Query)
	case PanelChart:
		res.Chart, res.ChartStep, res.Warnings, err = g.chart(ctx, p)
	case PanelInstant:
		res.Instant, res.Warnings, err = g.instant(ctx, p.Query)
	case PanelAlerts:
		if p.Source == AlertsFromSeries {
			res.Alerts, res.Warnings, err = g.alerts(ctx, p.Query)
		} else {
			res.Alerts, res.Warnings, err = g.topicAlerts(ctx, p.Query)
		}
	case PanelAvailability:
		res.Availability, res.Warnings, err = g.availability(ctx, p)
	default:
		err = fmt.Errorf("unknown panel type %q", p.Type)
	}
	return res, err
}

func (g generator) vector(ctx context.Context, query string) (model.Vector, []string, error) {
	v, warn, err := g.q.Query(ctx, query, g.at())
	if err != nil {
		return nil, nil, fmt.Errorf("query %s: %w", query, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		if s, ok := v.(*model.Scalar); ok {
			return model.Vector{{Metric: model.Metric{}, Value: s.Value, Timestamp: s.Timestamp}}, warn, nil
		}
		return nil, nil, fmt.Errorf("query %s: got a %s, want a vector", query, v.Type())
	}
	return vec, warn, nil
}

// table computes min, avg, max, p95 and last of every series over the
// period on the server, so only five numbers a series travel.
func (g generator) table(ctx context.Context, expr string) ([]TableRow, []string, error) {
	sq := g.subquery(expr)
	funcs := []string{"min_over_time(%s)", "avg_over_time(%s)", "max_over_time(%s)", "quantile_over_time(0.95, %s)", "last_over_time(%s)"}
	rows := map[model.Fingerprint]*TableRow{}
	var warnings []string
	for i, f := range funcs {
		vec, warn, err := g.vector(ctx, fmt.Sprintf(f, sq))
		if err != nil {
			return nil, nil, err
		}
		warnings = append(warnings, warn...)
		for _, s := range vec {
			m := s.Metric.Clone()
			delete(m, model.MetricNameLabel) // some _over_time functions keep it, some drop it
			fp := m.Fingerprint()
			row, ok := rows[fp]
			if !ok {
				nan := Num(math.NaN())
				row = &TableRow{Labels: labelMap(m), Min: nan, Avg: nan, Max: nan, P95: nan, Last: nan}
				rows[fp] = row
			}
			*[]*Num{&row.Min, &row.Avg, &row.Max, &row.P95, &row.Last}[i] = Num(s.Value)
		}
	}
	out := make([]TableRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b TableRow) int { return cmp.Compare(labelKey(a.Labels), labelKey(b.Labels)) })
	return out, warnings, nil
}

func (g generator) instant(ctx context.Context, expr string) ([]InstantValue, []string, error) {
	vec, warn, err := g.vector(ctx, expr)
	if err != nil {
		return nil, nil, err
	}
	out := make([]InstantValue, 0, len(vec))
	for _, s := range vec {
		out = append(out, InstantValue{Labels: labelMap(s.Metric), Value: Num(s.Value)})
	}
	slices.SortFunc(out, func(a, b InstantValue) int { return cmp.Compare(labelKey(a.Labels), labelKey(b.Labels)) })
	return out, warn, nil
}

// availability is, per series of the expression, the fraction of the
// period's steps at which it returned a sample.
func (g generator) availability(ctx context.Context, p Panel) ([]Availability, []string, error) {
	steps := float64(g.end.Sub(g.start) / g.r.Step)
	vec, warn, err := g.vector(ctx, fmt.Sprintf("count_over_time(%s)", g.subquery(p.Query)))
	if err != nil {
		return nil, nil, err
	}
	out := make([]Availability, 0, len(vec))
	for _, s := range vec {
		a := Availability{Labels: labelMap(s.Metric), Fraction: Num(math.Min(1, float64(s.Value)/steps))}
		if p.Objective > 0 {
			met := float64(a.Fraction) >= p.Objective
			a.Met = &met
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Availability) int { return cmp.Compare(labelKey(a.Labels), labelKey(b.Labels)) })
	return out, warn, nil
}

func (g generator) matrix(ctx context.Context, query string, step time.Duration) (model.Matrix, []string, error) {
	v, warn, err := g.q.QueryRange(ctx, query, v1.Range{Start: g.start, End: g.at(), Step: step})
	if err != nil {
		return nil, nil, fmt.Errorf("query %s: %w", query, err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, nil, fmt.Errorf("query %s: got a %s, want a matrix", query, v.Type())
	}
	return m, warn, nil
}

// topicAlerts reads the alert history of topic-alerts.
func (g generator) topicAlerts(ctx context.Context, selector string) ([]AlertSpan, []string, error) {
	if g.history == nil {
		return nil, nil, errors.New("no topic-alerts reader: use source ALERTS")
	}
	var ms []*labels.Matcher
	if selector != "" {
		var err error
		if ms, err = parser.NewParser(parser.Options{}).ParseMetricSelector(selector); err != nil {
			return nil, nil, fmt.Errorf("selector %s: %w", selector, err)
		}
	}
	spans, skipped, err := g.history(ctx, g.r.Tenant, ms, g.start, g.end)
	if err != nil {
		return nil, nil, err
	}
	var warn []string
	if skipped > 0 {
		warn = append(warn, fmt.Sprintf("%d undecodable records of topic-alerts skipped", skipped))
	}
	return spans, warn, nil
}

// alertsQuery counts, at each step, the firing ALERTS samples (narrowed by
// selector) of the step before: a series is firing at a step only if it
// has a sample in it, not for the lookback after its last one.
func alertsQuery(selector string, step time.Duration) (string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr("ALERTS" + selector)
	if err != nil {
		return "", err
	}
	vs, ok := e.(*parser.VectorSelector)
	if !ok {
		return "", fmt.Errorf("%q is not a label selector", selector)
	}
	vs.LabelMatchers = append(vs.LabelMatchers, labels.MustNewMatcher(labels.MatchEqual, "alertstate", "firing"))
	return fmt.Sprintf("count_over_time(%s[%s])", vs.String(), promDuration(step)), nil
}

// alerts turns the firing ALERTS series into spans: consecutive steps
// with a sample are one span.
func (g generator) alerts(ctx context.Context, selector string) ([]AlertSpan, []string, error) {
	q, err := alertsQuery(selector, g.r.Step)
	if err != nil {
		return nil, nil, err
	}
	m, warn, err := g.matrix(ctx, q, g.r.Step)
	if err != nil {
		return nil, nil, err
	}
	stepMs := g.r.Step.Milliseconds()
	var out []AlertSpan
	for _, ss := range m {
		lbls := ss.Metric.Clone()
		delete(lbls, model.MetricNameLabel)
		delete(lbls, "alertstate")
		add := func(from, to model.Time) {
			// A sample at t stands for the step from t: the last one's
			// span ends a step later.
			s, e := from.Time(), to.Add(g.r.Step).Time()
			if e.After(g.end) {
				e = g.end
			}
			out = append(out, AlertSpan{Labels: labelMap(lbls), Start: s.UTC(), End: e.UTC(), Duration: e.Sub(s).Seconds()})
		}
		for i := 0; i < len(ss.Values); {
			j := i
			for j+1 < len(ss.Values) && int64(ss.Values[j+1].Timestamp-ss.Values[j].Timestamp) <= stepMs {
				j++
			}
			add(ss.Values[i].Timestamp, ss.Values[j].Timestamp)
			i = j + 1
		}
	}
	slices.SortFunc(out, func(a, b AlertSpan) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(labelKey(a.Labels), labelKey(b.Labels)))
	})
	return out, warn, nil
}

// chartStep spreads points over the period, in whole seconds, no finer
// than the report's step.
func chartStep(period time.Duration, points int, floor time.Duration) time.Duration {
	s := (period / time.Duration(points)).Truncate(time.Second)
	if rem := period % time.Duration(points); rem != 0 || s == 0 {
		s += time.Second
	}
	return max(s, floor)
}

func (g generator) chart(ctx context.Context, p Panel) ([]ChartSeries, float64, []string, error) {
	step := chartStep(g.end.Sub(g.start), p.Points, min(g.r.Step, time.Minute))
	m, warn, err := g.matrix(ctx, p.Query, step)
	if err != nil {
		return nil, 0, nil, err
	}
	out := make([]ChartSeries, 0, len(m))
	for _, ss := range m {
		cs := ChartSeries{Labels: labelMap(ss.Metric), Points: len(ss.Values), samples: ss.Values}
		cs.Min, cs.Max, cs.Last = Num(math.NaN()), Num(math.NaN()), Num(math.NaN())
		for i, v := range ss.Values {
			f := float64(v.Value)
			if i == 0 || f < float64(cs.Min) {
				cs.Min = Num(f)
			}
			if i == 0 || f > float64(cs.Max) {
				cs.Max = Num(f)
			}
			cs.Last = Num(f)
		}
		if p.Forecast != nil {
			g.forecast(&cs, p.Forecast, step)
		}
		out = append(out, cs)
	}
	slices.SortFunc(out, func(a, b ChartSeries) int { return cmp.Compare(labelKey(a.Labels), labelKey(b.Labels)) })
	return out, step.Seconds(), warn, nil
}

// maxGap is the largest share of missing points a forecast bridges.
const maxGap = 0.2

func (g generator) forecast(cs *ChartSeries, fs *ForecastSpec, step time.Duration) {
	y, missing := regular(cs.samples, g.start, g.end, step)
	if len(y) == 0 || float64(missing) > maxGap*float64(len(y)) {
		cs.NoForecast = fmt.Sprintf("%d of %d points missing", missing, len(y))
		return
	}
	season := int(math.Round(float64(fs.Season) / float64(step)))
	h := max(1, int(fs.Horizon/step))
	f, err := MakeForecast(y, season, h)
	if err != nil {
		cs.NoForecast = err.Error()
		return
	}
	cs.Forecast = f
}

// regular puts samples on the grid start, start+step, … before end,
// filling gaps with the previous value (the first with the next).
func regular(s []model.SamplePair, start, end time.Time, step time.Duration) ([]float64, int) {
	n := int(end.Sub(start) / step)
	if end.Sub(start)%step != 0 {
		n++
	}
	y := make([]float64, n)
	have := make([]bool, n)
	for _, p := range s {
		i := int(p.Timestamp.Time().Sub(start) / step)
		if i >= 0 && i < n {
			y[i], have[i] = float64(p.Value), true
		}
	}
	missing, first := 0, -1
	for i := range y {
		switch {
		case have[i]:
			if first < 0 {
				first = i
			}
		case i > 0 && first >= 0:
			y[i] = y[i-1]
			missing++
		default:
			missing++
		}
	}
	if first < 0 {
		return nil, n
	}
	for i := range first {
		y[i] = y[first]
	}
	return y, missing
}

// labelKey orders series by their labels.
func labelKey(m map[string]string) string {
	return model.LabelSet(toLabelSet(m)).String()
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}
