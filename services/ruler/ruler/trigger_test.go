package ruler

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// TestEventDrivenEvaluation proves a group is evaluated when a batch
// touches a series it selects, not for unrelated series or other tenants'
// series, and that a burst is coalesced. The group's tick is an hour, so
// every evaluation seen is data-triggered.
func TestEventDrivenEvaluation(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "acme", "rules.yml", `groups:
- name: cpu
  interval: 1h
  rules:
  - alert: HighCPU
    expr: cpu_usage_percent{resource="demo-host"} > 90
`)
	cfg := testConfig(dir)
	cfg.Evaluation.Debounce = 50 * time.Millisecond
	ts := newTestService(t, cfg, time.Now)
	ts.start(t)
	g := ts.group(t, "acme")
	evals := func() float64 { return ts.evaluations("acme", g, triggerData) }
	// The start evaluates every group once.
	require.Eventually(t, func() bool { return evals() == 1 }, 10*time.Second, time.Millisecond)

	quiet := func(what string) {
		t.Helper()
		// Give a wrong trigger ample time to show.
		time.Sleep(300 * time.Millisecond)
		require.Equal(t, 1.0, evals(), what)
	}
	ts.src.live <- record("acme", time.Now(), "memory_used_bytes", 1e9, "resource", "demo-host")
	quiet("an unrelated series does not evaluate the group")
	ts.src.live <- record("acme", time.Now(), "cpu_usage_percent", 95, "resource", "other-host")
	quiet("a series of the name but not matching the selector does not evaluate the group")
	ts.src.live <- record("other", time.Now(), "cpu_usage_percent", 95, "resource", "demo-host")
	quiet("another tenant's series does not evaluate the group")
	require.Empty(t, ts.pub.alerts(t))

	ts.src.live <- record("acme", time.Now(), "cpu_usage_percent", 95, "resource", "demo-host")
	require.Eventually(t, func() bool { return len(ts.pub.alerts(t)) == 1 }, 10*time.Second, time.Millisecond)
	// The evaluation is counted once it returns, which can be after its
	// alert was published.
	require.Eventually(t, func() bool { return evals() == 2 }, 10*time.Second, time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, 2.0, evals(), "one evaluation for the batch")
	a := ts.pub.alerts(t)[0]
	require.Equal(t, "HighCPU", a.Labels["alertname"])
	require.Equal(t, StateFiring, a.State)
	msg := ts.pub.topic(contract.TopicAlerts)[0]
	require.Equal(t, "acme", msg.Metadata.Get(contract.HeaderTenant))

	// A burst costs far fewer evaluations than batches.
	const burst = 200
	for range burst {
		ts.src.live <- record("acme", time.Now(), "cpu_usage_percent", 96, "resource", "demo-host")
	}
	require.Eventually(t, func() bool { return evals() > 2 }, 10*time.Second, time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	require.Less(t, evals()-2, float64(burst)/4, "a burst is coalesced")
	require.Len(t, ts.pub.alerts(t), 1, "still firing: no new state change")
}

// TestTenantIsolation proves a tenant's rules see only its own series,
// even when they name another tenant in a selector, and that recording
// results carry the tenant.
func TestTenantIsolation(t *testing.T) {
	dir := t.TempDir()
	for _, tenant := range []string{"acme", "other"} {
		writeRules(t, dir, tenant, "rules.yml", `groups:
- name: total
  rules:
  - record: tenant:cpu_usage_percent:sum
    expr: sum(cpu_usage_percent)
  - alert: TooMuchCPU
    expr: tenant:cpu_usage_percent:sum > 100
  - alert: PeekingAtOther
    expr: count({tenant="other", __name__=~".+"}) > 0
`)
	}
	now := time.Now()
	ts := newTestService(t, testConfig(dir), func() time.Time { return now })
	acme, other := ts.group(t, "acme"), ts.group(t, "other")
	ts.handleMetrics(record("acme", now, "cpu_usage_percent", 60, "resource", "a1"))
	ts.handleMetrics(record("other", now, "cpu_usage_percent", 60, "resource", "a1"))
	acme.evalAt(now, triggerTick, noHops)
	other.evalAt(now, triggerTick, noHops)
	ts.drainOutbox()
	for _, a := range ts.pub.alerts(t) {
		require.Equal(t, "other", a.Tenant, "only tenant other sees its own series: %v", a.Labels)
		require.Equal(t, "PeekingAtOther", a.Labels["alertname"])
	}
	require.Len(t, ts.pub.alerts(t), 1)

	now = now.Add(time.Second)
	ts.handleMetrics(record("acme", now, "cpu_usage_percent", 50, "resource", "a2"))
	acme.evalAt(now, triggerTick, noHops)
	other.evalAt(now, triggerTick, noHops)
	ts.drainOutbox()
	alerts := ts.pub.alerts(t)
	require.Len(t, alerts, 2)
	require.Equal(t, "TooMuchCPU", alerts[1].Labels["alertname"])
	require.Equal(t, "acme", alerts[1].Tenant)
	require.Equal(t, "acme", alerts[1].Labels["tenant"])

	// Recorded sums went to topic-samples, one batch per tenant and
	// evaluation, labelled with the tenant.
	recs := ts.pub.topic(contract.TopicSamples)
	require.NotEmpty(t, recs)
	sums := map[string]float64{}
	for _, m := range recs {
		b := decodeBatch(t, m.Payload)
		require.Equal(t, "rule", b.Source)
		require.Equal(t, b.Tenant, m.Metadata.Get(contract.HeaderTenant))
		for _, ser := range b.Series {
			require.Contains(t, ser.Labels, labelPair("tenant", b.Tenant))
			sums[b.Tenant] = ser.Samples[len(ser.Samples)-1].Value
		}
	}
	require.Equal(t, map[string]float64{"acme": 110, "other": 60}, sums)
}
