package reporter

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

// Panel types.
const (
	PanelTable        = "table"
	PanelChart        = "chart"
	PanelInstant      = "instant"
	PanelAlerts       = "alerts"
	PanelAvailability = "availability"
)

// Report is one validated report definition of a tenant.
type Report struct {
	Tenant   string
	Name     string
	Title    string
	File     string
	Line     int
	Schedule Schedule
	Location *time.Location
	Period   Period
	// Step is the resolution of tables and availability.
	Step   time.Duration
	Panels []Panel
}

// Panel is one section of a report.
type Panel struct {
	Type  string
	Title string
	Query string
	// Points is how many points a chart draws across the period.
	Points int
	// Forecast, when set, extends each chart series by Horizon.
	Forecast *ForecastSpec
	// Objective is the availability target (0: none).
	Objective float64
	// Source of an alerts panel: AlertsFromTopic or AlertsFromSeries.
	Source string
}

// Where an alerts panel reads alert history.
const (
	// AlertsFromTopic reads topic-alerts, where tmaflow's ruler publishes
	// alert changes.
	AlertsFromTopic = "topic-alerts"
	// AlertsFromSeries reads the ALERTS series of the query API, as
	// Prometheus' rule manager writes them.
	AlertsFromSeries = "ALERTS"
)

// ForecastSpec asks for a forecast of a chart's series.
type ForecastSpec struct {
	Horizon time.Duration
	// Season is the length of one seasonal cycle (1d for daily
	// patterns); 0 fits double exponential smoothing without a season.
	Season time.Duration
}

// The YAML shape of a definition file.
type fileYAML struct {
	Reports []reportYAML `yaml:"reports"`
}

type reportYAML struct {
	Name     string      `yaml:"name"`
	Title    string      `yaml:"title"`
	Schedule string      `yaml:"schedule"`
	Timezone string      `yaml:"timezone"`
	Period   string      `yaml:"period"`
	Step     string      `yaml:"step"`
	Panels   []panelYAML `yaml:"panels"`
}

type panelYAML struct {
	Type      string        `yaml:"type"`
	Title     string        `yaml:"title"`
	Query     string        `yaml:"query"`
	Points    int           `yaml:"points"`
	Objective float64       `yaml:"objective"`
	Source    string        `yaml:"source"`
	Forecast  *forecastYAML `yaml:"forecast"`
}

type forecastYAML struct {
	Horizon string `yaml:"horizon"`
	Season  string `yaml:"season"`
}

// validName is a report name: a record key and a file name.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$`)

// defaultPoints is how many points a chart draws when not told.
const defaultPoints = 720

// ParseFile parses the definitions of one file of tenant. Every problem is
// reported as file:line: message.
func ParseFile(tenant, file string, data []byte) ([]Report, error) {
	var f fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	lines := reportLines(&doc)
	var (
		out  []Report
		errs []error
	)
	seen := map[string]int{}
	p := parser.NewParser(parser.Options{})
	for i, ry := range f.Reports {
		line := 0
		var panelLines []int
		if i < len(lines) {
			line, panelLines = lines[i].line, lines[i].panels
		}
		r, err := ry.build(p, panelLines)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: report %q: %w", file, line, ry.Name, err))
			continue
		}
		if prev, dup := seen[r.Name]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: report %q: name already used at line %d", file, line, r.Name, prev))
			continue
		}
		seen[r.Name] = line
		r.Tenant, r.File, r.Line = tenant, file, line
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

type reportLine struct {
	line   int
	panels []int
}

// reportLines finds the line of every report and of its panels.
func reportLines(doc *yaml.Node) []reportLine {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	reports := mapValue(doc.Content[0], "reports")
	if reports == nil || reports.Kind != yaml.SequenceNode {
		return nil
	}
	out := make([]reportLine, 0, len(reports.Content))
	for _, r := range reports.Content {
		rl := reportLine{line: r.Line}
		if ps := mapValue(r, "panels"); ps != nil && ps.Kind == yaml.SequenceNode {
			for _, p := range ps.Content {
				rl.panels = append(rl.panels, p.Line)
			}
		}
		out = append(out, rl)
	}
	return out
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func (ry reportYAML) build(p parser.Parser, panelLines []int) (Report, error) {
	if !validName.MatchString(ry.Name) {
		return Report{}, errors.New("name: want letters, digits, '-' and '_', at most 100")
	}
	r := Report{Name: ry.Name, Title: ry.Title}
	if r.Title == "" {
		r.Title = ry.Name
	}
	tz := ry.Timezone
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return Report{}, fmt.Errorf("timezone: %w", err)
	}
	r.Location = loc
	if ry.Schedule == "" {
		return Report{}, errors.New("schedule: missing (a cron expression or @daily, @weekly, @monthly)")
	}
	if r.Schedule, err = ParseSchedule(ry.Schedule, loc); err != nil {
		return Report{}, err
	}
	if ry.Period == "" {
		return Report{}, errors.New("period: missing (day, week, month or a duration)")
	}
	if r.Period, err = ParsePeriod(ry.Period); err != nil {
		return Report{}, err
	}
	r.Step = time.Minute
	if ry.Step != "" {
		d, err := model.ParseDuration(ry.Step)
		if err != nil || d <= 0 {
			return Report{}, fmt.Errorf("step %q: want a positive duration", ry.Step)
		}
		r.Step = time.Duration(d)
	}
	if len(ry.Panels) == 0 {
		return Report{}, errors.New("panels: none")
	}
	for i, py := range ry.Panels {
		pn, err := py.build(p)
		if err != nil {
			line := 0
			if i < len(panelLines) {
				line = panelLines[i]
			}
			return Report{}, fmt.Errorf("panel %d (line %d): %w", i+1, line, err)
		}
		r.Panels = append(r.Panels, pn)
	}
	return r, nil
}

func (py panelYAML) build(p parser.Parser) (Panel, error) {
	pn := Panel{Type: py.Type, Title: py.Title, Query: py.Query, Points: py.Points, Objective: py.Objective, Source: py.Source}
	switch py.Type {
	case PanelTable, PanelChart, PanelInstant, PanelAvailability:
		if py.Query == "" {
			return Panel{}, errors.New("query: missing")
		}
	case PanelAlerts:
		// The query is an optional selector narrowing the alerts.
		switch py.Source {
		case "":
			pn.Source = AlertsFromTopic
		case AlertsFromTopic, AlertsFromSeries:
		default:
			return Panel{}, fmt.Errorf("source %q: want %s or %s", py.Source, AlertsFromTopic, AlertsFromSeries)
		}
	default:
		return Panel{}, fmt.Errorf("type %q: want table, chart, instant, alerts or availability", py.Type)
	}
	if py.Query != "" {
		q := py.Query
		if py.Type == PanelAlerts {
			q = "ALERTS" + q
		}
		if _, err := p.ParseExpr(q); err != nil {
			return Panel{}, fmt.Errorf("query %q: %w", py.Query, err)
		}
	}
	if pn.Title == "" {
		pn.Title = py.Query
		if pn.Title == "" {
			pn.Title = py.Type
		}
	}
	if py.Points < 0 || py.Points > 10000 {
		return Panel{}, fmt.Errorf("points %d: want 1 to 10000", py.Points)
	}
	if pn.Points == 0 {
		pn.Points = defaultPoints
	}
	if py.Objective < 0 || py.Objective > 1 {
		return Panel{}, fmt.Errorf("objective %g: want a fraction between 0 and 1", py.Objective)
	}
	if py.Source != "" && py.Type != PanelAlerts {
		return Panel{}, errors.New("source: only alerts panels have one")
	}
	if py.Objective != 0 && py.Type != PanelAvailability {
		return Panel{}, errors.New("objective: only availability panels have one")
	}
	if py.Forecast != nil {
		if py.Type != PanelChart {
			return Panel{}, errors.New("forecast: only charts have one")
		}
		fs, err := py.Forecast.build()
		if err != nil {
			return Panel{}, err
		}
		pn.Forecast = &fs
	}
	return pn, nil
}

func (fy forecastYAML) build() (ForecastSpec, error) {
	h, err := model.ParseDuration(fy.Horizon)
	if err != nil || h <= 0 {
		return ForecastSpec{}, fmt.Errorf("forecast.horizon %q: want a positive duration", fy.Horizon)
	}
	fs := ForecastSpec{Horizon: time.Duration(h)}
	if fy.Season != "" {
		s, err := model.ParseDuration(fy.Season)
		if err != nil || s <= 0 {
			return ForecastSpec{}, fmt.Errorf("forecast.season %q: want a positive duration", fy.Season)
		}
		fs.Season = time.Duration(s)
	}
	return fs, nil
}
