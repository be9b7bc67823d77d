package ruler

import (
	"log/slog"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"
)

// TestBuildRulesPrintsOnce proves a built rule prints its expression as
// the parser would, and that its selectors are still found by walking it.
func TestBuildRulesPrintsOnce(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	rg := rulefmt.RuleGroup{Name: "g", Rules: []rulefmt.Rule{
		{Alert: "High", Expr: "cpu_usage_percent{resource_id='7'}   >  90"},
		{Record: "job:avg", Expr: "avg by (job) (avg_over_time(load[5m])) / on() group_left scalar(up)"},
	}}
	rs, err := buildRules("acme", rg, p, "", slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	for i, r := range rs {
		want, err := p.ParseExpr(rg.Rules[i].Expr)
		require.NoError(t, err)
		require.Equal(t, want.String(), r.Query().String(), "rule %d", i)
		require.Equal(t, want.Type(), r.Query().Type(), "rule %d", i)
		require.Equal(t, want, queryOf(r), "rule %d", i)
	}
	var names []string
	for _, ms := range selectorsOf(rs) {
		for _, m := range ms {
			if m.Name == model.MetricNameLabel {
				names = append(names, m.Value)
			}
		}
	}
	require.ElementsMatch(t, []string{"cpu_usage_percent", "load", "up"}, names)
}
