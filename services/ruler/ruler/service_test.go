package ruler

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// TestInvalidRecordsGoToDLQ checks that undecodable records and records
// whose tenant header contradicts the batch are dead-lettered with the
// reason, and that good records behind them are still used.
func TestInvalidRecordsGoToDLQ(t *testing.T) {
	cases := []struct {
		name string
		rec  Record
		err  string
	}{
		{"not avro", Record{Topic: contract.TopicMetrics, Key: []byte("k"), Value: []byte("{}"), Headers: map[string]string{}}, ""},
		{"tenant mismatch", func() Record {
			r := record("acme", time.Now(), "x", 1)
			r.Headers[contract.HeaderTenant] = "other"
			return r
		}(), `tenant header "other" differs from the batch tenant "acme"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestService(t, testConfig(""), time.Now)
			ts.handleMetrics(tc.rec)
			ts.handleMetrics(record("acme", time.Now(), "x", 1))
			ts.drainOutbox()
			dead := ts.pub.topic(contract.TopicDLQ)
			require.Len(t, dead, 1)
			require.Equal(t, tc.rec.Value, []byte(dead[0].Payload))
			require.Equal(t, contract.TopicMetrics, dead[0].Metadata.Get(contract.HeaderSourceTopic))
			require.Equal(t, Stage, dead[0].Metadata.Get(contract.HeaderStage))
			require.NotEmpty(t, dead[0].Metadata.Get(contract.HeaderError))
			require.Contains(t, dead[0].Metadata.Get(contract.HeaderError), tc.err)
			require.Equal(t, 1.0, testutilCounter(t, ts, "tmaflow_ruler_dead_letters_total"))
			require.Equal(t, uint64(1), ts.win.NumSeries(), "the good record is in the window")
		})
	}
}

// TestRulesAPI checks the Prometheus-shaped rules and alerts endpoints
// and the tenant header.
func TestRulesAPI(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "acme", "rules.yml", "groups:\n- name: g\n  interval: 1h\n  rules:\n  - {alert: A, expr: x > 1, for: 1h}\n  - {record: y, expr: x * 2}\n")
	writeRules(t, dir, "other", "rules.yml", "groups:\n- name: h\n  rules:\n  - {record: z, expr: vector(1)}\n")
	ts := newTestService(t, testConfig(dir), time.Now)
	ts.start(t)
	ts.src.live <- record("acme", time.Now(), "x", 5)
	get := func(path, tenant string, into any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+ts.Addr()+path, nil)
		require.NoError(t, err)
		if tenant != "" {
			req.Header.Set(TenantHeader, tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { require.NoError(t, resp.Body.Close()) }()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(into))
	}
	var alerts struct {
		Status string
		Data   struct{ Alerts []apiAlert }
	}
	require.Eventually(t, func() bool {
		get("/api/v1/alerts", "acme", &alerts)
		return len(alerts.Data.Alerts) == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, "success", alerts.Status)
	require.Equal(t, "pending", alerts.Data.Alerts[0].State)
	require.Equal(t, "5e+00", alerts.Data.Alerts[0].Value)

	var rules struct{ Data struct{ Groups []apiGroup } }
	get("/api/v1/rules", "", &rules)
	require.Len(t, rules.Data.Groups, 2)
	get("/api/v1/rules", "acme", &rules)
	require.Len(t, rules.Data.Groups, 1)
	g := rules.Data.Groups[0]
	require.Equal(t, "g", g.Name)
	require.Equal(t, 3600.0, g.Interval)
	require.Len(t, g.Rules, 2)
	require.Equal(t, "alerting", g.Rules[0].Type)
	require.Equal(t, "pending", g.Rules[0].State)
	require.Equal(t, 3600.0, g.Rules[0].Duration)
	require.Equal(t, "recording", g.Rules[1].Type)
	require.Equal(t, "ok", g.Rules[1].Health)
}
