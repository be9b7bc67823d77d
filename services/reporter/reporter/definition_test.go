package reporter

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseFile(t *testing.T) {
	const good = `reports:
  - name: daily
    schedule: "@daily"
    timezone: Europe/Berlin
    period: day
    panels:
      - type: table
        query: up
      - type: chart
        query: rate(x[5m])
        forecast: {horizon: 1d, season: 1d}
`
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{name: "good", yaml: good},
		{name: "empty file", yaml: ""},
		{name: "syntax error", yaml: "reports:\n  - name: [\n", wantErr: "f.yaml: yaml: line 2: did not find expected node content"},
		{name: "unknown field", yaml: "reports:\n  - name: a\n    shedule: '@daily'\n", wantErr: "line 3: field shedule not found"},
		{name: "bad schedule", yaml: "reports:\n  - name: a\n    schedule: '@sometimes'\n    period: day\n    panels: [{type: table, query: up}]\n",
			wantErr: `f.yaml:2: report "a": schedule "@sometimes"`},
		{name: "bad time zone", yaml: "\n\nreports:\n  - name: a\n    schedule: '@daily'\n    timezone: Mars/Olympus\n    period: day\n    panels: [{type: table, query: up}]\n",
			wantErr: `f.yaml:4: report "a": timezone: unknown time zone Mars/Olympus`},
		{name: "bad period", yaml: "reports:\n  - name: a\n    schedule: '@daily'\n    period: fortnight\n    panels: [{type: table, query: up}]\n",
			wantErr: `f.yaml:2: report "a": period "fortnight"`},
		{name: "bad query names its panel line", yaml: "reports:\n  - name: a\n    schedule: '@daily'\n    period: day\n    panels:\n      - type: table\n        query: up\n      - type: chart\n        query: rate(x[5m]\n",
			wantErr: `f.yaml:2: report "a": panel 2 (line 8): query "rate(x[5m]"`},
		{name: "bad panel type", yaml: "reports:\n  - name: a\n    schedule: '@daily'\n    period: day\n    panels: [{type: pie, query: up}]\n",
			wantErr: `type "pie": want table, chart, instant, alerts or availability`},
		{name: "forecast on a table", yaml: "reports:\n  - name: a\n    schedule: '@daily'\n    period: day\n    panels: [{type: table, query: up, forecast: {horizon: 1h}}]\n",
			wantErr: "forecast: only charts have one"},
		{name: "bad name", yaml: "reports:\n  - name: a/b\n    schedule: '@daily'\n    period: day\n    panels: [{type: table, query: up}]\n",
			wantErr: `f.yaml:2: report "a/b": name: want letters`},
		{name: "duplicate name", yaml: good + "  - name: daily\n    schedule: '@daily'\n    period: day\n    panels: [{type: table, query: up}]\n",
			wantErr: `f.yaml:12: report "daily": name already used at line 2`},
		{name: "no panels", yaml: "reports:\n  - name: a\n    schedule: '@daily'\n    period: day\n", wantErr: "panels: none"},
		{name: "objective out of range", yaml: "reports:\n  - name: a\n    schedule: '@daily'\n    period: day\n    panels: [{type: availability, query: up == 1, objective: 99.9}]\n",
			wantErr: "objective 99.9: want a fraction"},
		{name: "alerts selector", yaml: "reports:\n  - name: a\n    schedule: '@daily'\n    period: day\n    panels: [{type: alerts, query: 'sum(x)'}]\n",
			wantErr: `query "sum(x)"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := ParseFile("demo", "f.yaml", []byte(tc.yaml))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			if tc.yaml == good {
				require.Len(t, rs, 1)
				r := rs[0]
				require.Equal(t, "demo", r.Tenant)
				require.Equal(t, 2, r.Line)
				require.Equal(t, "Europe/Berlin", r.Location.String())
				require.Equal(t, time.Minute, r.Step)
				require.Equal(t, &ForecastSpec{Horizon: 24 * time.Hour, Season: 24 * time.Hour}, r.Panels[1].Forecast)
				require.Equal(t, defaultPoints, r.Panels[1].Points)
			}
		})
	}
}

func TestLoadDir(t *testing.T) {
	write := func(t *testing.T, dir, rel, body string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	const one = "reports:\n  - name: a\n    schedule: '@daily'\n    period: day\n    panels: [{type: table, query: up}]\n"
	tests := []struct {
		name    string
		files   map[string]string
		keep    func(string) bool
		want    int
		wantErr string
	}{
		{name: "tenants", files: map[string]string{"demo/a.yaml": one, "acme/a.yml": one, "acme/notes.txt": "x"}, want: 2},
		{name: "this shard's tenants only", files: map[string]string{"demo/a.yaml": one, "acme/a.yml": "not: [valid"}, keep: func(t string) bool { return t == "demo" }, want: 1},
		{name: "file outside a tenant", files: map[string]string{"a.yaml": one}, wantErr: "outside a tenant directory"},
		{name: "same name twice in a tenant", files: map[string]string{"demo/a.yaml": one, "demo/b.yaml": one}, wantErr: "name already used in"},
		{name: "one bad file fails the load", files: map[string]string{"demo/a.yaml": one, "acme/a.yaml": "reports: [{name: x}]"}, wantErr: "acme/a.yaml:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for rel, body := range tc.files {
				write(t, dir, rel, body)
			}
			rs, err := LoadDir(dir, tc.keep)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.Nil(t, rs)
				return
			}
			require.NoError(t, err)
			require.Len(t, rs, tc.want)
		})
	}
}

// TestExampleReportsLoad keeps the reports `make run` ships valid.
func TestExampleReportsLoad(t *testing.T) {
	rs, err := LoadDir("../../../examples/reports", nil)
	require.NoError(t, err)
	require.Len(t, rs, 2)
	for _, r := range rs {
		require.Equal(t, "demo", r.Tenant)
	}
}
