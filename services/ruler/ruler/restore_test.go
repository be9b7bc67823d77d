package ruler

import (
	"testing"
	"time"

	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"
)

// A fresh ruler has seen nothing before its first sample: absent() with a
// `for` goes pending at start, it does not fire at once as if the series
// had been missing for the whole `for` already.
func TestFreshStartDoesNotFireAbsentAtOnce(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "demo", "rules.yml", `groups:
- name: silent
  interval: 100ms
  rules:
  - alert: Silent
    expr: absent(cpu_usage_percent{resource="demo-host"})
    for: 10m
`)
	clk := newClock(time.Now())
	ts := newTestService(t, testConfig(dir), clk.Now)
	ts.start(t)
	g := ts.group(t, "demo")
	require.Eventually(t, func() bool {
		ar := g.group.AlertingRules()[0]
		return ar.State() == rules.StatePending
	}, 5*time.Second, time.Millisecond, "pending from now on")
	require.Empty(t, ts.pub.alerts(t), "nothing fired or published")
}
