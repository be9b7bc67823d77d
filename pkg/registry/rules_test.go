package registry

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/tma"
)

func TestLoadLabelerFile(t *testing.T) {
	path := filepath.Join("testdata", "labeler.yaml")
	f, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, []Description{
		{ID: 27, Name: "CPU usage", Unit: "percent", Type: tma.Measurement, Kind: KindGauge, Help: "CPU time used, in percent of one core.", Metric: "CPU_usage_percent"},
		{ID: 28, Name: "bytes_sent", Unit: "bytes", Type: tma.Measurement, Kind: KindCounter, Metric: "bytes_sent_bytes_total"},
		{ID: 29, Name: "restart", Type: tma.Event, Metric: "restart_event"},
		{ID: 30, Name: "mem", Unit: "mebibytes", Type: tma.Measurement, Kind: KindGauge, Metric: "node_memory_used_mebibytes"},
	}, f.Descriptions)
	require.Equal(t, []LabelRule{
		{SourceLabels: []string{"__mqtt_topic__"}, Separator: ";", Regex: "plant/([^/]+)/.*", TargetLabel: "site", Replacement: "$1", Action: ActionReplace,
			File: path, Line: 34, Column: 5, Field: "label_rules[0]"},
		{Separator: ";", Regex: "debug_.*", Replacement: "$1", Action: ActionLabelDrop,
			File: path, Line: 38, Column: 5, Field: "label_rules[1]"},
		{SourceLabels: []string{"__name__", "job"}, Separator: "/", Regex: "up/(.*)", Replacement: "$1", Action: ActionDrop,
			File: path, Line: 40, Column: 5, Field: "label_rules[2]"},
		{SourceLabels: []string{"instance"}, Separator: ";", Regex: "(.*)", Modulus: 8, TargetLabel: "shard", Replacement: "$1", Action: ActionHashMod,
			File: path, Line: 44, Column: 5, Field: "label_rules[3]"},
	}, f.LabelRules)
	require.Equal(t, "testdata/labeler.yaml:34:5: label_rules[0]: boom", f.LabelRules[0].Errorf("boom").Error())
}

func TestLoadRuleErrors(t *testing.T) {
	path := filepath.Join("testdata", "bad_rules.yaml")
	_, err := Load(path)
	var list ErrorList
	require.True(t, errors.As(err, &list), "%v", err)
	type want struct {
		line  int
		field string
		msg   string
	}
	got := make([]want, len(list))
	for i, e := range list {
		got[i] = want{e.Line, e.Field, e.Msg}
	}
	require.Equal(t, []want{
		{5, "resources[0].labels.tenant", "reserved: the labeler sets tenant itself"},
		{9, "descriptions[0].unit", `invalid unit "m/": empty part around /`},
		{14, "descriptions[1].kind", "only measurements have a kind"},
		{23, "descriptions[3].metric", `metric name "cpu_seconds" also made by descriptions[2] (line 16)`},
		{27, "descriptions[4].metric", `invalid metric name "9lives": want [a-zA-Z_:][a-zA-Z0-9_:]*`},
		{31, "descriptions[5].kind", `want gauge or counter, got "histogram"`},
		{33, "label_rules[0].target_label", "the tenant label comes from the record's tenant; rules cannot set it"},
		{35, "label_rules[1].target_label", "required for action replace"},
		{37, "label_rules[2].regex", "error parsing regexp: missing closing ): `^(?s:(unclosed)$`"},
		{39, "label_rules[3].modulus", "required (> 0) for action hashmod"},
		{43, "label_rules[4].target_label", "action labeldrop takes only regex"},
		{44, "label_rules[5].action", `unknown relabel action "frobnicate"`},
		{45, "label_rules[6].source_labels[0]", `invalid label name "bad-name"`},
		{47, "label_rules[7].target_label", `invalid label name template "${1"`},
		{51, "label_rules[8].regex", "action keepequal takes only source_labels and target_label"},
		{52, "label_rules[9].lowercase", "unknown field"},
	}, got)
}

func TestMetricName(t *testing.T) {
	for _, tc := range []struct {
		d    Description
		want string
	}{
		{Description{Name: "cpu_usage", Unit: "percent", Type: tma.Measurement, Kind: KindGauge}, "cpu_usage_percent"},
		{Description{Name: "cpu_usage_percent", Unit: "percent", Type: tma.Measurement, Kind: KindGauge}, "cpu_usage_percent"},
		{Description{Name: "requests", Type: tma.Measurement, Kind: KindCounter}, "requests_total"},
		{Description{Name: "requests_total", Type: tma.Measurement, Kind: KindCounter}, "requests_total"},
		{Description{Name: "requests_total", Unit: "bytes", Type: tma.Measurement, Kind: KindCounter}, "requests_bytes_total"},
		{Description{Name: "requests_total", Type: tma.Measurement, Kind: KindGauge}, "requests_total"},
		{Description{Name: "restart", Type: tma.Event}, "restart_event"},
		{Description{Name: "door_event", Type: tma.Event}, "door_event"},
		{Description{Name: "overheat", Unit: "celsius", Type: tma.Event}, "overheat_celsius_event"},
		{Description{Name: "CPU usage (%)", Unit: "percent", Type: tma.Measurement}, "CPU_usage_percent"},
		{Description{Name: "5xx rate", Type: tma.Measurement}, "_5xx_rate"},
		{Description{Name: "a--b  c", Type: tma.Measurement}, "a_b_c"},
		{Description{Name: "!!!", Type: tma.Measurement}, "_"},
		{Description{Name: "ns:metric", Type: tma.Measurement}, "ns:metric"},
	} {
		t.Run(tc.d.Name, func(t *testing.T) {
			got := MetricName(tc.d)
			require.Equal(t, tc.want, got)
			require.True(t, ValidMetricName(got), got)
		})
	}
}

func TestNormalizeUnit(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"", "", ""},
		{"1", "", ""},
		{"%", "percent", ""},
		{" ms ", "milliseconds", ""},
		{"By/s", "bytes_per_second", ""},
		{"1/s", "per_second", ""},
		{"°C", "celsius", ""},
		{"requests", "requests", ""},
		{"km/h", "km_per_hour", ""},
		{"ms/min", "milliseconds_per_minute", ""},
		{"m³", "", `invalid unit "m³"`},
		{"a/b/c", "", `invalid unit "a/b/c"`},
		{"/s", "", "empty part"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := NormalizeUnit(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestValidLabelTemplate(t *testing.T) {
	for s, want := range map[string]bool{
		"site": true, "_x": true, "$1": true, "${1}": true, "${1}_x": true, "prefix_$1": true, "a$b": true,
		"": false, "1a": false, "${1": false, "$": false, "${}": false, "a-b": false, "x.y": false,
	} {
		require.Equal(t, want, validLabelTemplate(s), s)
	}
}

// GET /registry marshals the file: the secret hashes must not be in it.
func TestJSONHidesSecretHashes(t *testing.T) {
	f, err := Load(filepath.Join("testdata", "labeler.yaml"))
	require.NoError(t, err)
	b, err := json.Marshal(f)
	require.NoError(t, err)
	require.NotContains(t, string(b), "$2a$")
	require.NotContains(t, string(b), "secret")
	require.Contains(t, string(b), `"tenant":"acme"`)
	require.Contains(t, string(b), `"metric":"bytes_sent_bytes_total"`)
}
