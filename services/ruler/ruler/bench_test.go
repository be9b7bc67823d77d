package ruler

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

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
