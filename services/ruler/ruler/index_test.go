package ruler

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

// The trigger index finds exactly the groups whose selectors match a
// series, whichever level of the index holds the selector.
func TestTenantIndexMatch(t *testing.T) {
	ix := newTenantIndex()
	p := parser.NewParser(parser.Options{})
	for name, sel := range map[string]string{
		"device-a":     `cpu_usage_percent{resource_id="a"}`,
		"device-b":     `cpu_usage_percent{resource_id="b", site="lab"}`,
		"site-lab":     `cpu_usage_percent{site="lab"}`,
		"fleet":        `cpu_usage_percent`,
		"fleet-not-a":  `cpu_usage_percent{resource_id!="a"}`,
		"absent-label": `cpu_usage_percent{owner=""}`,
		"any-name":     `{__name__=~"cpu_.*", resource_id="a"}`,
		"other-metric": `memory_used_bytes{resource_id="a"}`,
	} {
		ms, err := p.ParseMetricSelector(sel)
		require.NoError(t, err)
		ix.add(&groupRunner{name: name}, ms)
	}
	for _, tc := range []struct {
		series labels.Labels
		want   []string
	}{
		{labels.FromStrings("__name__", "cpu_usage_percent", "resource_id", "a", "site", "lab"),
			[]string{"absent-label", "any-name", "device-a", "fleet", "site-lab"}},
		{labels.FromStrings("__name__", "cpu_usage_percent", "resource_id", "b", "site", "lab"),
			[]string{"absent-label", "device-b", "fleet", "fleet-not-a", "site-lab"}},
		{labels.FromStrings("__name__", "cpu_usage_percent", "resource_id", "b", "site", "edge", "owner", "x"),
			[]string{"fleet", "fleet-not-a"}},
		{labels.FromStrings("__name__", "memory_used_bytes", "resource_id", "a"),
			[]string{"other-metric"}},
		{labels.FromStrings("__name__", "disk_free_bytes", "resource_id", "a"), nil},
	} {
		t.Run(tc.series.String(), func(t *testing.T) {
			var got []string
			ix.match(tc.series.Get(labels.MetricName), tc.series, func(g *groupRunner) { got = append(got, g.name) })
			slices.Sort(got)
			got = slices.Compact(got)
			require.Equal(t, tc.want, got)
		})
	}
}
