package ruler

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/rules"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

// fakeAM records every alert posted to it.
type fakeAM struct {
	mu     sync.Mutex
	alerts []postable
	srv    *httptest.Server
}

func newFakeAM(t *testing.T) *fakeAM {
	f := &fakeAM{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b []postable
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.alerts = append(f.alerts, b...)
		f.mu.Unlock()
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// of returns the alerts received for a resource.
func (f *fakeAM) of(resource string) []postable {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []postable
	for _, a := range f.alerts {
		if a.Labels["resource"] == resource {
			out = append(out, a)
		}
	}
	return out
}

// TestRestartKeepsAlertState runs the ruler on the embedded Kafka broker,
// lets one alert fire and another go pending, restarts the ruler and
// checks that the firing alert is resent with its start time (not fired
// again: one firing record on topic-alerts) and that the pending alert's
// `for` continues from when its condition began, not from the restart.
func TestRestartKeepsAlertState(t *testing.T) {
	bcfg := broker.Config{}
	bfs := flag.NewFlagSet("broker", flag.ContinueOnError)
	bcfg.RegisterFlags(bfs)
	bcfg.ListenAddress = "127.0.0.1:0"
	bcfg.Partitions = 4
	b, err := broker.Start(bcfg, nil)
	require.NoError(t, err)
	t.Cleanup(b.Close)

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = b.Addrs()
	kcfg.FetchMaxWait = 50 * time.Millisecond
	pub, err := kafka.NewPublisher(kcfg, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pub.Close()) })

	dir := t.TempDir()
	writeRules(t, dir, "acme", "rules.yml", `groups:
- name: cpu
  interval: 100ms
  rules:
  - alert: HighCPU
    expr: cpu_usage_percent > 90
    for: 2s
`)
	am := newFakeAM(t)
	cfg := testConfig(dir)
	cfg.Alerting.AlertmanagerURLs = []string{am.srv.URL}
	start := func() (*Service, func()) {
		src, err := kafka.NewReader(kcfg, nil)
		require.NoError(t, err)
		s, err := New(cfg, Options{Publisher: pub, Source: src, Registry: prometheus.NewRegistry()})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- s.Execute() }()
		require.Eventually(t, s.CaughtUp, 30*time.Second, 5*time.Millisecond)
		var once sync.Once
		return s, func() {
			once.Do(func() {
				s.Interrupt(nil)
				require.NoError(t, <-done)
			})
		}
	}
	produce := func(resource string, v float64) time.Time {
		now := time.Now()
		rec := record("acme", now, "cpu_usage_percent", v, "resource", resource)
		msg := message.NewMessage(resource+itoa(now.UnixNano()), rec.Value)
		for k, v := range rec.Headers {
			msg.Metadata.Set(k, v)
		}
		bus.SetKey(msg, []byte("acme\x00"+resource))
		require.NoError(t, pub.Publish(contract.TopicMetrics, msg))
		return now
	}
	alertOf := func(s *Service, resource string) *rules.Alert {
		for _, g := range s.rules.Load().groups {
			for _, a := range g.group.AlertingRules()[0].ActiveAlerts() {
				if a.Labels.Get("resource") == resource {
					return a
				}
			}
		}
		return nil
	}

	first, stopFirst := start()
	t1 := produce("r1", 95)
	require.Eventually(t, func() bool { return len(am.of("r1")) > 0 }, 30*time.Second, 5*time.Millisecond, "r1 fires after 2s")
	startsAt := am.of("r1")[0].StartsAt
	require.WithinDuration(t, t1.Add(2*time.Second), startsAt, time.Second)
	t2 := produce("r2", 95)
	require.Eventually(t, func() bool {
		a := alertOf(first, "r2")
		return a != nil && a.State == rules.StatePending
	}, 30*time.Second, 5*time.Millisecond)
	// Stop well into r2's pending time.
	time.Sleep(time.Second)
	stopFirst()
	restartAt := time.Now()
	sentBefore := len(am.of("r1"))

	second, stopSecond := start()
	defer stopSecond()
	r2 := alertOf(second, "r2")
	require.NotNil(t, r2, "r2 is active after the restore")
	require.Equal(t, rules.StatePending, r2.State, "r2 still pending: its 2s are not over")
	require.Less(t, r2.ActiveAt, restartAt.Add(-500*time.Millisecond), "r2's for started before the restart")
	require.WithinDuration(t, t2, r2.ActiveAt, 300*time.Millisecond)

	require.Eventually(t, func() bool { return len(am.of("r1")) > sentBefore }, 30*time.Second, 5*time.Millisecond, "r1 is resent after the restart")
	for _, a := range am.of("r1") {
		require.True(t, a.StartsAt.Equal(startsAt), "r1 keeps its start %s, got %s", startsAt, a.StartsAt)
	}
	require.Eventually(t, func() bool { return len(am.of("r2")) > 0 }, 30*time.Second, 5*time.Millisecond, "r2 fires")
	require.WithinDuration(t, t2.Add(2*time.Second), am.of("r2")[0].StartsAt, time.Second, "r2 fires 2s after its condition began")

	// topic-alerts: one firing record per alert, across both runs.
	time.Sleep(300 * time.Millisecond)
	stopSecond()
	recs, err := brokertest.ReadAll(context.Background(), b.Addrs()[0], contract.TopicAlerts)
	require.NoError(t, err)
	states := map[string][]string{}
	for _, r := range recs {
		var a Alert
		require.NoError(t, json.Unmarshal(r.Value, &a))
		states[a.Labels["resource"]] = append(states[a.Labels["resource"]], a.State)
		require.Equal(t, string(AlertKey("acme", a.Fingerprint)), string(r.Key))
	}
	require.Equal(t, map[string][]string{"r1": {"firing"}, "r2": {"firing"}}, states)
}
