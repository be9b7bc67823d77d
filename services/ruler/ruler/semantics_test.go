package ruler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRuleSemantics drives one alerting rule over the window with injected
// time: every step optionally appends a sample of cpu_usage_percent (or
// heartbeat_event), evaluates the group at that time and checks the
// rule's state and the state changes published to topic-alerts.
func TestRuleSemantics(t *testing.T) {
	type step struct {
		at    time.Duration
		name  string // series to push, empty: none
		value float64
		want  string   // rule state after the evaluation
		pub   []string // states published so far
	}
	const cpu = "cpu_usage_percent"
	cases := []struct {
		name  string
		rule  string
		steps []step
	}{
		{
			name: "threshold fires and resolves at once",
			rule: `{alert: HighCPU, expr: "cpu_usage_percent > 90"}`,
			steps: []step{
				{at: 0, name: cpu, value: 50, want: "inactive"},
				{at: 100 * time.Millisecond, name: cpu, value: 95, want: "firing", pub: []string{"firing"}},
				{at: 200 * time.Millisecond, name: cpu, value: 96, want: "firing", pub: []string{"firing"}},
				{at: 300 * time.Millisecond, name: cpu, value: 50, want: "inactive", pub: []string{"firing", "resolved"}},
			},
		},
		{
			name: "for 500ms pends exactly that long",
			rule: `{alert: HighCPU, expr: "cpu_usage_percent > 90", for: 500ms}`,
			steps: []step{
				{at: 0, name: cpu, value: 95, want: "pending"},
				{at: 300 * time.Millisecond, name: cpu, value: 97, want: "pending"},
				{at: 499 * time.Millisecond, want: "pending"},
				{at: 500 * time.Millisecond, want: "firing", pub: []string{"firing"}},
			},
		},
		{
			name: "for is reset when the condition breaks",
			rule: `{alert: HighCPU, expr: "cpu_usage_percent > 90", for: 500ms}`,
			steps: []step{
				{at: 0, name: cpu, value: 95, want: "pending"},
				{at: 300 * time.Millisecond, name: cpu, value: 10, want: "inactive"},
				{at: 400 * time.Millisecond, name: cpu, value: 95, want: "pending"},
				{at: 800 * time.Millisecond, want: "pending"},
				{at: 900 * time.Millisecond, want: "firing", pub: []string{"firing"}},
			},
		},
		{
			name: "keep_firing_for holds a resolved alert",
			rule: `{alert: HighCPU, expr: "cpu_usage_percent > 90", keep_firing_for: 1s}`,
			steps: []step{
				{at: 0, name: cpu, value: 95, want: "firing", pub: []string{"firing"}},
				{at: 100 * time.Millisecond, name: cpu, value: 10, want: "firing", pub: []string{"firing"}},
				{at: 1099 * time.Millisecond, want: "firing", pub: []string{"firing"}},
				{at: 1100 * time.Millisecond, want: "inactive", pub: []string{"firing", "resolved"}},
			},
		},
		{
			name: "absent fires when the series goes stale",
			rule: `{alert: NoHeartbeat, expr: "absent(heartbeat_event)"}`,
			steps: []step{
				{at: 0, name: "heartbeat_event", value: 1, want: "inactive"},
				{at: 900 * time.Millisecond, want: "inactive"},
				{at: 1100 * time.Millisecond, want: "firing", pub: []string{"firing"}},
				{at: 1200 * time.Millisecond, name: "heartbeat_event", value: 1, want: "inactive", pub: []string{"firing", "resolved"}},
			},
		},
		{
			name: "resolves when its data ages out of the lookback",
			rule: `{alert: HighCPU, expr: "cpu_usage_percent > 90"}`,
			steps: []step{
				{at: 0, name: cpu, value: 95, want: "firing", pub: []string{"firing"}},
				{at: 900 * time.Millisecond, want: "firing", pub: []string{"firing"}},
				{at: 1001 * time.Millisecond, want: "inactive", pub: []string{"firing", "resolved"}},
			},
		},
		{
			name: "aggregation over a range",
			rule: `{alert: HighAvg, expr: "avg_over_time(cpu_usage_percent[1s]) > 90"}`,
			steps: []step{
				{at: 0, name: cpu, value: 100, want: "firing", pub: []string{"firing"}},
				{at: 100 * time.Millisecond, name: cpu, value: 50, want: "inactive", pub: []string{"firing", "resolved"}},
				{at: 200 * time.Millisecond, name: cpu, value: 150, want: "firing", pub: []string{"firing", "resolved", "firing"}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeRules(t, dir, "acme", "rules.yml", "groups:\n- name: g\n  interval: 100ms\n  rules:\n  - "+tc.rule+"\n")
			base := time.Now().Truncate(time.Second)
			clk := newClock(base)
			cfg := testConfig(dir)
			cfg.Evaluation.LookbackDelta = time.Second
			ts := newTestService(t, cfg, clk.Now)
			g := ts.group(t, "acme")
			rule := g.group.AlertingRules()[0]
			for i, st := range tc.steps {
				now := base.Add(st.at)
				clk.Set(now)
				if st.name != "" {
					ts.handleMetrics(record("acme", now, st.name, st.value, "resource", "demo-host"))
				}
				g.evalAt(now, triggerTick, noHops)
				require.Equal(t, st.want, rule.State().String(), "step %d at %s", i, st.at)
				ts.drainOutbox()
				var got []string
				for _, a := range ts.pub.alerts(t) {
					got = append(got, a.State)
					require.Equal(t, "acme", a.Tenant)
					require.Equal(t, "acme", a.Labels["tenant"])
					require.Equal(t, Fingerprint(a.Labels), a.Fingerprint)
				}
				require.Equal(t, st.pub, got, "step %d at %s: published states", i, st.at)
			}
		})
	}
}

// TestAlertTemplates checks that labels and annotations are expanded with
// the sample's labels, value and the tenant as an external label.
func TestAlertTemplates(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "acme", "rules.yml", `groups:
- name: g
  rules:
  - alert: HighCPU
    expr: cpu_usage_percent > 90
    labels:
      severity: page
      where: '{{ $labels.resource }}'
    annotations:
      summary: '{{ $labels.resource }} at {{ $value | printf "%.1f" }}% for tenant {{ $externalLabels.tenant }}'
`)
	now := time.Now()
	ts := newTestService(t, testConfig(dir), func() time.Time { return now })
	ts.handleMetrics(record("acme", now, "cpu_usage_percent", 97.25, "resource", "demo-host"))
	ts.group(t, "acme").evalAt(now, triggerTick, noHops)
	ts.drainOutbox()
	alerts := ts.pub.alerts(t)
	require.Len(t, alerts, 1)
	a := alerts[0]
	require.Equal(t, map[string]string{
		"alertname": "HighCPU", "severity": "page", "where": "demo-host",
		"resource": "demo-host", "tenant": "acme",
	}, a.Labels)
	require.Equal(t, "demo-host at 97.2% for tenant acme", a.Annotations["summary"])
	require.Equal(t, StateFiring, a.State)
	require.Equal(t, now.UnixMilli(), a.StartsAt.UnixMilli())
	require.True(t, a.EndsAt.After(now), "a firing alert ends in the future unless resent")
}
