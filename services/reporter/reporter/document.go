package reporter

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/common/model"
)

// Document is a generated report: the topic-reports record's value
// (schemas/report.schema.json) and the index of its files on disk.
type Document struct {
	// ID is deterministic from tenant, report and period: a rerun
	// replaces, never duplicates.
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Report      string    `json:"report"`
	Title       string    `json:"title"`
	Schedule    string    `json:"schedule"`
	Timezone    string    `json:"timezone"`
	Period      DocPeriod `json:"period"`
	ScheduledAt time.Time `json:"scheduledAt"`
	GeneratedAt time.Time `json:"generatedAt"`
	// Step is the resolution of tables and availability, in seconds.
	Step   float64       `json:"stepSeconds"`
	Panels []PanelResult `json:"panels"`
	// Files are the names of the report's files beside the document.
	Files []string `json:"files"`
}

// DocPeriod is the span a report covers, [start, end).
type DocPeriod struct {
	Kind  string    `json:"kind"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// PanelResult is one panel's figures; only the field of its type is set.
type PanelResult struct {
	Type     string   `json:"type"`
	Title    string   `json:"title"`
	Query    string   `json:"query,omitempty"`
	Warnings []string `json:"warnings,omitempty"`

	Table        []TableRow     `json:"table,omitempty"`
	Chart        []ChartSeries  `json:"chart,omitempty"`
	Instant      []InstantValue `json:"instant,omitempty"`
	Alerts       []AlertSpan    `json:"alerts,omitempty"`
	Availability []Availability `json:"availability,omitempty"`
	Objective    float64        `json:"objective,omitempty"`
	// CSV names the panel's CSV file, for tabular panels.
	CSV string `json:"csv,omitempty"`
	// ChartStep is the resolution of a chart, in seconds.
	ChartStep float64 `json:"chartStepSeconds,omitempty"`
}

// TableRow is the summary of one series over the period.
type TableRow struct {
	Labels map[string]string `json:"labels"`
	Min    Num               `json:"min"`
	Avg    Num               `json:"avg"`
	Max    Num               `json:"max"`
	P95    Num               `json:"p95"`
	Last   Num               `json:"last"`
}

// ChartSeries is one charted series: its summary and forecast; the
// points themselves go to the HTML only.
type ChartSeries struct {
	Labels   map[string]string `json:"labels"`
	Points   int               `json:"points"`
	Min      Num               `json:"min"`
	Max      Num               `json:"max"`
	Last     Num               `json:"last"`
	Forecast *Forecast         `json:"forecast,omitempty"`
	// NoForecast says why a forecast asked for is not shown.
	NoForecast string `json:"noForecast,omitempty"`

	samples []model.SamplePair
}

// InstantValue is one series of an instant query at the period's end.
type InstantValue struct {
	Labels map[string]string `json:"labels"`
	Value  Num               `json:"value"`
}

// AlertSpan is one stretch of time an alert was firing.
type AlertSpan struct {
	Labels   map[string]string `json:"labels"`
	Start    time.Time         `json:"start"`
	End      time.Time         `json:"end"`
	Duration float64           `json:"durationSeconds"`
}

// Availability is the fraction of the period's steps at which a series of
// the expression held (was returned).
type Availability struct {
	Labels   map[string]string `json:"labels"`
	Fraction Num               `json:"fraction"`
	// Met says whether Fraction reached the panel's objective.
	Met *bool `json:"met,omitempty"`
}

// Num is a float that encodes NaN and ±Inf as null, which JSON lacks.
type Num float64

func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', -1, 64), nil
}

func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*n = Num(f)
	return nil
}

// DocumentID is the id of tenant's report over [start, end).
func DocumentID(tenant, report string, start, end time.Time) string {
	h := sha256.New()
	for _, s := range []string{tenant, report, start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// labelMap turns a metric into a plain map.
func labelMap(m model.Metric) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[string(k)] = string(v)
	}
	return out
}
