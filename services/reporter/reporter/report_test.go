package reporter

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/schemas"
)

// reportSchema compiles schemas/report.schema.json.
func reportSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.ReportJSONSchema()))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	require.NoError(t, c.AddResource(schemas.ReportSchemaID, doc))
	sch, err := c.Compile(schemas.ReportSchemaID)
	require.NoError(t, err)
	return sch
}

func validateReport(t testing.TB, sch *jsonschema.Schema, payload []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	require.NoError(t, err)
	require.NoError(t, sch.Validate(v))
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer func() { require.NoError(t, f.Close()) }()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	return rows
}

// TestReportOverKnownData runs the daily report over fillDay's data and
// checks every figure against the values computed by hand, the CSV and
// the JSON document against its schema, then reruns it: one file, the
// same id and key.
func TestReportOverKnownData(t *testing.T) {
	e := newEnv(t, nil)
	r := e.daily(t)
	fire := day.Add(24*time.Hour + 5*time.Minute)
	doc, err := e.svc.Run(context.Background(), r, fire)
	require.NoError(t, err)

	require.Equal(t, day, doc.Period.Start)
	require.Equal(t, day.Add(24*time.Hour), doc.Period.End)
	require.Equal(t, DocumentID("demo", "daily", day, day.Add(24*time.Hour)), doc.ID)
	require.Len(t, doc.Panels, 5)

	// Table: a is 0…1439, b is 5; the 1e6 just outside the day is not seen.
	// p95 of 0…1439 interpolates at rank 0.95·1439 = 1367.05.
	table := doc.Panels[0].Table
	require.Len(t, table, 2)
	require.Equal(t, map[string]string{"instance": "a"}, table[0].Labels)
	want := [][5]float64{{0, 719.5, 1439, 1367.05, 1439}, {5, 5, 5, 5, 5}}
	for i, row := range table {
		got := [5]float64{float64(row.Min), float64(row.Avg), float64(row.Max), float64(row.P95), float64(row.Last)}
		require.InDeltaSlice(t, want[i][:], got[:], 1e-9, "row %d", i)
	}

	// Chart: 288 points of 5 minutes, a forecast of 2 h with its error.
	chart := doc.Panels[1]
	require.Equal(t, 300.0, chart.ChartStep)
	require.Len(t, chart.Chart, 1)
	cs := chart.Chart[0]
	require.Equal(t, 288, cs.Points)
	require.NotNil(t, cs.Forecast, cs.NoForecast)
	require.Equal(t, "holt-winters", cs.Forecast.Model)
	require.Equal(t, 12, cs.Forecast.Season)
	require.Equal(t, 24, cs.Forecast.Horizon)
	require.True(t, cs.Forecast.Backtest.Defined())
	require.Less(t, float64(cs.Forecast.Backtest.MAPE), float64(cs.Forecast.Baseline.MAPE))

	// Instant at the end of the day: the last sample inside it.
	inst := doc.Panels[2].Instant
	require.Len(t, inst, 2)
	require.Equal(t, Num(1439), inst[0].Value)
	require.Equal(t, Num(5), inst[1].Value)

	// Alerts: one span while firing, pending ignored.
	alerts := doc.Panels[3].Alerts
	require.Len(t, alerts, 1)
	require.Equal(t, map[string]string{"alertname": "High", "severity": "page"}, alerts[0].Labels)
	require.Equal(t, day.Add(600*time.Minute), alerts[0].Start)
	require.Equal(t, day.Add(630*time.Minute), alerts[0].End)
	require.Equal(t, 1800.0, alerts[0].Duration)

	// Availability: up == 1 for 1296 of 1440 minutes, below 95 %.
	av := doc.Panels[4].Availability
	require.Len(t, av, 1)
	require.InDelta(t, 0.9, float64(av[0].Fraction), 1e-12)
	require.NotNil(t, av[0].Met)
	require.False(t, *av[0].Met)

	// Files: the CSV of the table parses and carries the same figures.
	dir := filepath.Join(e.cfg.DataDir, "reports", "demo", "daily")
	rows := readCSV(t, filepath.Join(dir, doc.Panels[0].CSV))
	require.Equal(t, [][]string{
		{"series", "min", "avg", "max", "p95", "last"},
		{`{instance="a"}`, "0", "719.5", "1439", "1367.05", "1439"},
		{`{instance="b"}`, "5", "5", "5", "5", "5"},
	}, rows)
	rows = readCSV(t, filepath.Join(dir, doc.Panels[4].CSV))
	require.Equal(t, [][]string{{"series", "fraction", "met"}, {`{instance="a"}`, "0.9", "false"}}, rows)
	require.FileExists(t, filepath.Join(dir, Base(doc)+".html"))

	// The record: keyed by report name, tenant header, valid document.
	recs := e.pub.records()
	require.Len(t, recs, 1)
	require.Equal(t, contract.TopicReports, recs[0].topic)
	require.Equal(t, "daily", recs[0].key)
	require.Equal(t, "demo", recs[0].tenant)
	sch := reportSchema(t)
	validateReport(t, sch, recs[0].payload)
	stored, err := os.ReadFile(filepath.Join(dir, Base(doc)+".json"))
	require.NoError(t, err)
	require.JSONEq(t, string(recs[0].payload), string(stored))
	for _, tenant := range e.api.Tenants() {
		require.Equal(t, "demo", tenant, "every query carries the report's tenant")
	}

	// A rerun of the same period (the fall-back hour repeats a run, or an
	// operator asks): same id and key, the files replaced, not added.
	e.clock.Set(fire.Add(time.Hour))
	doc2, err := e.svc.Run(context.Background(), r, fire.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, doc.ID, doc2.ID)
	recs = e.pub.records()
	require.Len(t, recs, 2)
	require.Equal(t, recs[0].key, recs[1].key)
	var d1, d2 Document
	require.NoError(t, json.Unmarshal(recs[0].payload, &d1))
	require.NoError(t, json.Unmarshal(recs[1].payload, &d2))
	require.Equal(t, d1.ID, d2.ID)
	jsons, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.Len(t, jsons, 1)
	entries, err := e.svc.store.List("demo")
	require.NoError(t, err)
	require.Len(t, entries, 1)
	leftovers, err := filepath.Glob(filepath.Join(dir, ".*"))
	require.NoError(t, err)
	require.Empty(t, leftovers, "no temporary files left")
}

func TestSchemaRejectsBadDocuments(t *testing.T) {
	sch := reportSchema(t)
	tests := []struct {
		name string
		doc  string
	}{
		{name: "empty", doc: `{}`},
		{name: "bad id", doc: `{"id":"x","tenant":"t","report":"r","title":"","schedule":"@daily","timezone":"UTC","period":{"kind":"day","start":"2026-11-01T00:00:00Z","end":"2026-11-02T00:00:00Z"},"scheduledAt":"2026-11-02T00:00:00Z","generatedAt":"2026-11-02T00:00:00Z","stepSeconds":60,"panels":[],"files":[]}`},
		{name: "unknown panel type", doc: `{"id":"0123456789abcdef01234567","tenant":"t","report":"r","title":"","schedule":"@daily","timezone":"UTC","period":{"kind":"day","start":"2026-11-01T00:00:00Z","end":"2026-11-02T00:00:00Z"},"scheduledAt":"2026-11-02T00:00:00Z","generatedAt":"2026-11-02T00:00:00Z","stepSeconds":60,"panels":[{"type":"pie","title":"x"}],"files":[]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(tc.doc)))
			require.NoError(t, err)
			require.Error(t, sch.Validate(v))
		})
	}
}
