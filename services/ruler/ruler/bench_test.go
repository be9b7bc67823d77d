package ruler

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/stretchr/testify/require"
)

// BenchmarkBatchToAlertmanager measures, in process, the time from a
// topic-metrics batch whose value crosses a threshold reaching the ruler
// to its alert arriving at an Alertmanager endpoint (an HTTP server
// standing in for it), with and without 1,000 other loaded rules that
// the batch does not concern. Run with -benchtime=500x.
func BenchmarkBatchToAlertmanager(b *testing.B) {
	for _, others := range []int{0, 1000} {
		b.Run("other_rules="+itoa(int64(others)), func(b *testing.B) {
			got := make(chan bool, 16)
			am := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var alerts []postable
				_ = json.NewDecoder(r.Body).Decode(&alerts)
				got <- len(alerts) > 0 && alerts[0].EndsAt.After(time.Now())
			}))
			defer am.Close()
			dir := b.TempDir()
			rules := "groups:\n- name: hot\n  interval: 1h\n  rules:\n  - {alert: Hot, expr: cpu_usage_percent > 90}\n"
			for i := range others {
				rules += "- name: other" + itoa(int64(i)) + "\n  interval: 1h\n  rules:\n  - {alert: Other, expr: other_metric_" + itoa(int64(i)) + " > 90}\n"
			}
			require.NoError(b, mkRules(dir, "acme", rules))
			cfg := testConfig(dir)
			cfg.Alerting.AlertmanagerURLs = []string{am.URL}
			src := newChanSource()
			s, err := New(cfg, Options{Publisher: newCapturePublisher(), Source: src})
			require.NoError(b, err)
			done := make(chan error, 1)
			go func() { done <- s.Execute() }()
			defer func() {
				s.Interrupt(nil)
				require.NoError(b, <-done)
			}()
			for !s.CaughtUp() {
				time.Sleep(time.Millisecond)
			}
			lat := make([]time.Duration, 0, b.N)
			// Samples of one series need distinct milliseconds: the window
			// refuses a second value at the same time.
			var last time.Time
			stamp := func() time.Time {
				last = last.Add(time.Millisecond)
				if now := time.Now(); now.After(last) {
					last = now
				}
				return last
			}
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				src.live <- record("acme", stamp(), "cpu_usage_percent", 95)
				for !<-got {
				}
				lat = append(lat, time.Since(start))
				src.live <- record("acme", stamp(), "cpu_usage_percent", 10)
				for <-got {
				}
				// Past the debounce period of the resolving evaluation,
				// as an isolated crossing would be.
				b.StopTimer()
				time.Sleep(3 * cfg.Evaluation.Debounce)
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
		})
	}
}

// BenchmarkDeviceGroup measures one evaluation of a group of ten rules on
// one device's series, of the three shapes bench-alert loads (threshold,
// avg_over_time over 1m, max by max_over_time over 5m), on a window with
// five minutes of those series at 1 s: the work a burst of device
// messages costs per group.
func BenchmarkDeviceGroup(b *testing.B) {
	dir := b.TempDir()
	require.NoError(b, mkRules(dir, "acme", "groups: []\n"))
	s, err := New(testConfig(dir), Options{Publisher: newCapturePublisher(), Source: newChanSource()})
	require.NoError(b, err)
	defer func() { require.NoError(b, s.Close()) }()
	now := time.Now()
	var rg rulefmt.RuleGroup
	rg.Name = "device-7"
	app := s.win.Appender(context.Background())
	for i := range 10 {
		name := "metric_" + itoa(int64(i))
		lbls := labels.FromStrings("__name__", name, "resource_id", "7", TenantLabel, "acme")
		for t := now.Add(-5 * time.Minute); !t.After(now); t = t.Add(time.Second) {
			_, err := app.Append(0, lbls, t.UnixMilli(), float64(i))
			require.NoError(b, err)
		}
		sel := name + `{resource_id="7"}`
		expr := [...]string{sel + " > 1000", "avg_over_time(" + sel + "[1m]) > 1000", "max by (resource_id) (max_over_time(" + sel + "[5m])) > 1000"}[i%3]
		rg.Rules = append(rg.Rules, rulefmt.Rule{Alert: "Rule" + itoa(int64(i)), Expr: expr})
	}
	require.NoError(b, app.Commit())
	g, err := s.newGroupRunner("acme", "rules.yml", rg)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		g.evalAt(now, triggerData, 0)
	}
}
