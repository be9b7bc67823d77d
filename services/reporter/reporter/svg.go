package reporter

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH     = 960, 320
	padL, padR         = 64, 16
	padT, padB         = 12, 40
	maxLegend          = 12
	chartTicksX        = 6
	chartTicksY        = 5
	forecastBandAlpha  = "0.18"
	forecastLineDashes = "6 4"
)

// palette colours the series; the first is the one the browser test looks
// for in the screenshot.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// ChartSVG draws the series of a chart panel over [start, end) and their
// forecasts past end, as a standalone <svg> element.
func ChartSVG(series []ChartSeries, start, end time.Time, step time.Duration, loc *time.Location) string {
	xMax := end
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, p := range s.samples {
			lo, hi = math.Min(lo, float64(p.Value)), math.Max(hi, float64(p.Value))
		}
		if f := s.Forecast; f != nil {
			if t := end.Add(time.Duration(f.Horizon) * step); t.After(xMax) {
				xMax = t
			}
			for i := range f.Values {
				lo, hi = math.Min(lo, f.Low[i]), math.Max(hi, f.High[i])
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" font-family="sans-serif" font-size="11">`, chartW, chartH, chartW, chartH)
	b.WriteString(`<rect x="0" y="0" width="100%" height="100%" fill="#ffffff"/>`)
	if math.IsInf(lo, 0) || math.IsNaN(lo) || math.IsNaN(hi) {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no data</text></svg>`, chartW/2-20, chartH/2)
		return b.String()
	}
	if lo == hi {
		lo, hi = lo-1, hi+1
	}
	x0, x1 := float64(start.UnixMilli()), float64(xMax.UnixMilli())
	px := func(t time.Time) float64 {
		return padL + (float64(t.UnixMilli())-x0)/(x1-x0)*(chartW-padL-padR)
	}
	py := func(v float64) float64 { return padT + (hi-v)/(hi-lo)*(chartH-padT-padB) }
	axes(&b, start, xMax, lo, hi, loc, px, py)
	if xMax.After(end) {
		fmt.Fprintf(&b, `<line class="now" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999999" stroke-dasharray="2 2"/>`, px(end), padT, px(end), chartH-padB)
	}
	for i, s := range series {
		col := palette[i%len(palette)]
		if f := s.Forecast; f != nil {
			forecastPaths(&b, f, end, step, col, px, py)
		}
		if len(s.samples) == 0 {
			continue
		}
		fmt.Fprintf(&b, `<path class="series" fill="none" stroke="%s" stroke-width="1.5" d="`, col)
		for j, p := range s.samples {
			cmd := "L"
			if j == 0 || p.Timestamp-s.samples[j-1].Timestamp > model.Time(2*step.Milliseconds()) {
				cmd = "M" // a gap breaks the line
			}
			fmt.Fprintf(&b, "%s%.1f %.1f", cmd, px(p.Timestamp.Time()), py(float64(p.Value)))
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func forecastPaths(b *strings.Builder, f *Forecast, end time.Time, step time.Duration, col string, px func(time.Time) float64, py func(float64) float64) {
	at := func(i int) time.Time { return end.Add(time.Duration(i) * step) }
	fmt.Fprintf(b, `<path class="band" fill="%s" fill-opacity="%s" stroke="none" d="`, col, forecastBandAlpha)
	for i, v := range f.High {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(b, "%s%.1f %.1f", cmd, px(at(i)), py(v))
	}
	for i := len(f.Low) - 1; i >= 0; i-- {
		fmt.Fprintf(b, "L%.1f %.1f", px(at(i)), py(f.Low[i]))
	}
	b.WriteString(`Z"/>`)
	fmt.Fprintf(b, `<path class="forecast" fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="%s" d="`, col, forecastLineDashes)
	for i, v := range f.Values {
		cmd := "L"
		if i == 0 {
			cmd = "M"
		}
		fmt.Fprintf(b, "%s%.1f %.1f", cmd, px(at(i)), py(v))
	}
	b.WriteString(`"/>`)
}

func axes(b *strings.Builder, start, end time.Time, lo, hi float64, loc *time.Location, px func(time.Time) float64, py func(float64) float64) {
	fmt.Fprintf(b, `<g stroke="#cccccc"><line x1="%d" y1="%d" x2="%d" y2="%d"/><line x1="%d" y1="%d" x2="%d" y2="%d"/></g>`,
		padL, padT, padL, chartH-padB, padL, chartH-padB, chartW-padR, chartH-padB)
	layout := "01-02 15:04"
	if end.Sub(start) > 3*24*time.Hour {
		layout = "2006-01-02"
	}
	for i := 0; i <= chartTicksX; i++ {
		t := start.Add(time.Duration(i) * end.Sub(start) / chartTicksX)
		x := px(t)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eeeeee"/>`, x, padT, x, chartH-padB)
		anchor := "middle"
		if i == chartTicksX {
			anchor = "end" // inside the picture
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="%s" fill="#444444">%s</text>`, x, chartH-padB+16, anchor, html.EscapeString(t.In(loc).Format(layout)))
	}
	for i := 0; i <= chartTicksY; i++ {
		v := lo + float64(i)*(hi-lo)/chartTicksY
		y := py(v)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eeeeee"/>`, padL, y, chartW-padR, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#444444">%s</text>`, padL-6, y+4, html.EscapeString(strconv.FormatFloat(v, 'g', 4, 64)))
	}
}

// formatValue prints a figure with up to six significant digits.
func formatValue(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}
