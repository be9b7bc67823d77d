package ruler

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// TestAlertmanagerEndToEnd feeds a batch crossing a threshold to the ruler
// and waits for the real Alertmanager's webhook to receive the alert, then
// the resolution.
func TestAlertmanagerEndToEnd(t *testing.T) {
	hook := peertest.NewWebhook(t)
	amURL := peertest.Alertmanager(t, hook.URL, "alertname", "resource")

	dir := t.TempDir()
	writeRules(t, dir, "demo", "rules.yml", `groups:
- name: cpu
  interval: 100ms
  rules:
  - alert: HighCPUUsage
    expr: cpu_usage_percent{resource="demo-host"} > 90
    annotations:
      summary: '{{ $labels.resource }} at {{ $value }}%'
`)
	cfg := testConfig(dir)
	cfg.Alerting.AlertmanagerURLs = []string{amURL}
	ts := newTestService(t, cfg, time.Now)
	ts.start(t)

	ts.src.live <- record("demo", time.Now(), "cpu_usage_percent", 50, "resource", "demo-host")
	time.Sleep(200 * time.Millisecond)
	require.Empty(t, hook.Received(), "below the threshold")

	sent := time.Now()
	ts.src.live <- record("demo", sent, "cpu_usage_percent", 95, "resource", "demo-host")
	require.Eventually(t, func() bool { return len(hook.Received()) > 0 }, 20*time.Second, time.Millisecond)
	first := hook.Received()[0]
	t.Logf("batch to webhook through Alertmanager: %s", first.At.Sub(sent))
	require.Equal(t, "firing", first.Status)
	require.Len(t, first.Alerts, 1)
	a := first.Alerts[0]
	require.Equal(t, map[string]string{"alertname": "HighCPUUsage", "resource": "demo-host", "tenant": "demo"}, a.Labels)
	require.WithinDuration(t, sent, a.StartsAt, 5*time.Second)

	ts.src.live <- record("demo", time.Now(), "cpu_usage_percent", 40, "resource", "demo-host")
	require.Eventually(t, func() bool {
		posts := hook.Received()
		return posts[len(posts)-1].Status == "resolved"
	}, 20*time.Second, 5*time.Millisecond, "the resolution reaches the webhook")
	require.Positive(t, testutilCounter(t, ts, "tmaflow_ruler_alerts_sent_total"))
}

// testutilCounter sums a counter family of the service's registry.
func testutilCounter(t *testing.T, ts *testService, name string) float64 {
	t.Helper()
	mfs, err := ts.reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestAlertmanagerRetries proves a failed delivery is counted and retried
// until the Alertmanager takes it.
func TestAlertmanagerRetries(t *testing.T) {
	var (
		mu     sync.Mutex
		calls  int
		bodies [][]postable
	)
	am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/api/v2/alerts", r.URL.Path)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		var b []postable
		_ = json.NewDecoder(r.Body).Decode(&b)
		bodies = append(bodies, b)
	}))
	t.Cleanup(am.Close)
	dir := t.TempDir()
	writeRules(t, dir, "acme", "rules.yml", "groups:\n- name: g\n  interval: 1h\n  rules:\n  - {alert: A, expr: x > 1}\n")
	cfg := testConfig(dir)
	cfg.Alerting.AlertmanagerURLs = []string{am.URL}
	ts := newTestService(t, cfg, time.Now)
	ts.start(t)
	ts.src.live <- record("acme", time.Now(), "x", 2)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(bodies) == 1
	}, 20*time.Second, time.Millisecond)
	mu.Lock()
	require.Equal(t, "A", bodies[0][0].Labels["alertname"])
	mu.Unlock()
	require.Equal(t, 2.0, testutilCounter(t, ts, "tmaflow_ruler_alert_send_failures_total"))
	// Counted once the client has read the answer, after the server
	// recorded the body.
	require.Eventually(t, func() bool {
		return testutilCounter(t, ts, "tmaflow_ruler_alerts_sent_total") == 1.0
	}, 5*time.Second, time.Millisecond)
}
