package bridge

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

func TestRouteMatch(t *testing.T) {
	for _, tc := range []struct {
		name, filter, topic string
		ok                  bool
		want                []samples.Label
	}{
		{"named levels", "a/+site/d/+device/m", "a/s1/d/dev7/m", true, []samples.Label{{Name: "site", Value: "s1"}, {Name: "device", Value: "dev7"}}},
		{"anonymous plus", "a/+/m", "a/x/m", true, nil},
		{"literal differs", "a/+/m", "a/x/n", false, nil},
		{"topic longer", "a/+", "a/x/y", false, nil},
		{"topic shorter", "a/+/m", "a/x", false, nil},
		{"named hash", "a/#rest", "a/x/y/z", true, []samples.Label{{Name: "rest", Value: "x/y/z"}}},
		{"hash matches parent", "a/#", "a", true, nil},
		{"empty level", "a/+x/m", "a//m", true, []samples.Label{{Name: "x", Value: ""}}},
		{"metric name level", "a/+__name__", "a/temp", true, []samples.Label{{Name: "__name__", Value: "temp"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			levels, err := parseFilter(tc.filter)
			require.NoError(t, err)
			r := &Route{levels: levels}
			got, ok := r.match(tc.topic, nil)
			require.Equal(t, tc.ok, ok)
			if tc.ok {
				require.Equal(t, tc.want, got)
			}
		})
	}
}

func TestParseMappingErrors(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"no tenants", "tenants: {}", "no tenants"},
		{"unknown field", "tenants:\n  a:\n    routs: []", "field routs not found"},
		{"outside prefix", "tenants:\n  a:\n    routes:\n      - {topic: b/x, format: tma}", `must start with the tenant's prefix "a/"`},
		{"bad format", "tenants:\n  a:\n    routes:\n      - {topic: a/x, format: xml}", `format "xml"`},
		{"number without name", "tenants:\n  a:\n    routes:\n      - {topic: a/x, format: number}", "needs metric"},
		{"number with both", "tenants:\n  a:\n    routes:\n      - {topic: a/+__name__, format: number, metric: m}", "not both"},
		{"hash not last", "tenants:\n  a:\n    routes:\n      - {topic: a/#/x, format: tma}", "# must be the last level"},
		{"partial wildcard", "tenants:\n  a:\n    routes:\n      - {topic: a/x+, format: tma}", "whole level"},
		{"bad capture", "tenants:\n  a:\n    routes:\n      - {topic: a/+1x, format: prometheus}", "not a label name"},
		{"twice", "tenants:\n  a:\n    routes:\n      - {topic: a/+x/+x, format: prometheus}", "used twice"},
		{"tma labels", "tenants:\n  a:\n    routes:\n      - {topic: a/+x, format: tma}", "label_rules"},
		{"json without metrics", "tenants:\n  a:\n    routes:\n      - {topic: a/x, format: json}", "needs metrics"},
		{"json bad prom name", "tenants:\n  a:\n    routes:\n      - {topic: a/x, format: json, metrics: [{mqtt_name: t, prom_name: ''}]}", "prom_name"},
		{"reserved label", "tenants:\n  a:\n    routes:\n      - {topic: a/x, format: prometheus, labels: {__x: y}}", "invalid label name"},
		{"capture and label", "tenants:\n  a:\n    routes:\n      - {topic: a/+x, format: prometheus, labels: {x: y}}", "both captured"},
		{"bad type", "tenants:\n  a:\n    routes:\n      - {topic: a/x, format: number, metric: m, type: summary}", "want gauge or counter"},
		{"bad prefix", "tenants:\n  a:\n    prefix: a\n    routes:\n      - {topic: a/x, format: tma}", "ending in /"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(tc.doc))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestMappingFixture(t *testing.T) {
	m, err := LoadMapping("testdata/mapping.yaml")
	require.NoError(t, err)
	require.Equal(t, "acme", m.tenantOf("acme/sensors/x"))
	require.Equal(t, "beta", m.tenantOf("beta/d/value"))
	require.Equal(t, "", m.tenantOf("gamma/x"))
	require.Equal(t, map[string]string{
		"acme/sites/+/devices/+/metrics/+": "acme",
		"acme/sites/+/devices/+/prom":      "acme",
		"acme/sites/+/devices/+/om":        "acme",
		"acme/tma/#":                       "acme",
		"acme/sensors/+":                   "acme",
		"beta/+/value":                     "beta",
	}, m.filters())
}

func TestTopicTemplate(t *testing.T) {
	tt, err := parseTopicTemplate(DefaultAlertTopic)
	require.NoError(t, err)
	require.Equal(t, "tmaflow/acme/alerts/dev_1/High", tt.render("acme", map[string]string{"resource": "dev/1", "alertname": "High"}))
	require.Equal(t, "tmaflow/acme/alerts/_/High", tt.render("acme", map[string]string{"alertname": "High"}))
	require.Equal(t, "tmaflow/a_b/alerts/", tt.prefix("a+b"))
	for _, bad := range []string{"x/{resource}/{tenant}", "x/{tenant", "x/{}/{tenant}", "x/#/{tenant}", "$SYS/{tenant}"} {
		_, err := parseTopicTemplate(bad)
		require.Error(t, err, bad)
	}
}

// The example mapping of `make run` parses.
func TestExampleMapping(t *testing.T) {
	m, err := LoadMapping("../../../examples/mqtt/mapping.yaml")
	require.NoError(t, err)
	require.Len(t, m.Tenants["demo"].Routes, 4)
}
