package reporter

import (
	"bytes"
	"embed"
	"encoding/csv"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strconv"
	"time"
)

//go:embed templates/report.html
var templateFS embed.FS

var reportTemplate = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"labels":   labelText,
	"num":      func(n Num) string { return formatValue(float64(n)) },
	"pct":      func(n Num) string { return pctText(float64(n)) },
	"pctf":     func(f float64) string { return pctText(100 * f) },
	"times100": func(n Num) Num { return 100 * n },
	"color":    func(i int) template.CSS { return template.CSS(palette[i%len(palette)]) },
	"deref":    func(b *bool) bool { return b != nil && *b },
	"seconds":  func(s float64) string { return (time.Duration(s) * time.Second).String() },
	"time":     func(t time.Time) string { return t.Format(time.RFC3339) },
}).ParseFS(templateFS, "templates/report.html"))

func pctText(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', 2, 64) + "%"
}

// labelText prints labels as {a="1", b="2"}, sorted.
func labelText(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	return labelKey(m)
}

// panelView is a panel as the template sees it.
type panelView struct {
	PanelResult
	SVG       template.HTML
	Forecasts bool
}

// Render makes the HTML and CSV files of d, naming them in d.Files and
// the panels' CSV fields.
func Render(d *Document, loc *time.Location) ([]File, error) {
	base := Base(d)
	var files []File
	views := make([]panelView, len(d.Panels))
	for i := range d.Panels {
		p := &d.Panels[i]
		rows := csvRows(p)
		if rows != nil {
			p.CSV = fmt.Sprintf("%s.%d.csv", base, i+1)
			var buf bytes.Buffer
			w := csv.NewWriter(&buf)
			if err := w.WriteAll(rows); err != nil {
				return nil, fmt.Errorf("write csv of panel %d: %w", i+1, err)
			}
			files = append(files, File{Name: p.CSV, Data: buf.Bytes()})
		}
		views[i] = panelView{PanelResult: *p}
		if p.Type == PanelChart {
			step := time.Duration(p.ChartStep * float64(time.Second))
			views[i].SVG = template.HTML(ChartSVG(p.Chart, d.Period.Start, d.Period.End, step, loc)) // built from escaped parts
			views[i].Forecasts = slices.ContainsFunc(p.Chart, func(s ChartSeries) bool { return s.Forecast != nil || s.NoForecast != "" })
		}
	}
	var buf bytes.Buffer
	err := reportTemplate.Execute(&buf, map[string]any{
		"Doc":        d,
		"Panels":     views,
		"PeriodText": d.Period.Start.In(loc).Format("2006-01-02 15:04") + " – " + d.Period.End.In(loc).Format("2006-01-02 15:04"),
		"Generated":  d.GeneratedAt.In(loc).Format(time.RFC3339),
	})
	if err != nil {
		return nil, fmt.Errorf("render report html: %w", err)
	}
	html := base + ".html"
	files = append(files, File{Name: html, Data: buf.Bytes()})
	d.Files = nil
	for _, f := range files {
		d.Files = append(d.Files, f.Name)
	}
	return files, nil
}

// csvRows is the table of a tabular panel, header first; nil for charts.
func csvRows(p *PanelResult) [][]string {
	f := func(n Num) string {
		if math.IsNaN(float64(n)) {
			return ""
		}
		return strconv.FormatFloat(float64(n), 'g', -1, 64)
	}
	switch p.Type {
	case PanelTable:
		rows := [][]string{{"series", "min", "avg", "max", "p95", "last"}}
		for _, r := range p.Table {
			rows = append(rows, []string{labelText(r.Labels), f(r.Min), f(r.Avg), f(r.Max), f(r.P95), f(r.Last)})
		}
		return rows
	case PanelInstant:
		rows := [][]string{{"series", "value"}}
		for _, r := range p.Instant {
			rows = append(rows, []string{labelText(r.Labels), f(r.Value)})
		}
		return rows
	case PanelAlerts:
		rows := [][]string{{"alert", "start", "end", "duration_seconds"}}
		for _, a := range p.Alerts {
			rows = append(rows, []string{labelText(a.Labels), a.Start.Format(time.RFC3339), a.End.Format(time.RFC3339), strconv.FormatFloat(a.Duration, 'g', -1, 64)})
		}
		return rows
	case PanelAvailability:
		rows := [][]string{{"series", "fraction", "met"}}
		for _, a := range p.Availability {
			met := ""
			if a.Met != nil {
				met = strconv.FormatBool(*a.Met)
			}
			rows = append(rows, []string{labelText(a.Labels), f(a.Fraction), met})
		}
		return rows
	}
	return nil
}
