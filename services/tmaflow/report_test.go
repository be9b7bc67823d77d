package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/schemas"
	"github.com/tmaflow/tmaflow/services/tmaflow/app"
)

// e2eReport is a report of the last hour of the demo host's CPU.
const e2eReport = `reports:
  - name: cpu-hour
    title: CPU of the last hour
    schedule: "@daily"
    period: 1h
    panels:
      - {type: table, title: CPU, query: 'cpu_usage_percent{resource="demo-host"}'}
      - {type: chart, title: CPU, query: 'cpu_usage_percent{resource="demo-host"}'}
      - {type: alerts, title: Alerts of the hour}
`

// TestReportEndToEnd posts ten observations to /monitor, runs a report
// over them through the persister's query API, and finds its figures in
// the HTML page and in the topic-reports record.
func TestReportEndToEnd(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "demo"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "demo", "cpu.yaml"), []byte(e2eReport), 0o644))
	// The reporter queries as a probe of the tenant: the persister checks
	// its credentials against the registry.
	creds := filepath.Join(t.TempDir(), "credentials.yaml")
	require.NoError(t, os.WriteFile(creds, []byte(demoTenant+": {username: "+demoProbe+", password: "+demoSecret+"}\n"), 0o600))
	persister := peertest.FreeAddr(t)
	tf := startTmaflow(t,
		"-persister.listen-address="+persister,
		"-reporter.query.url=http://"+persister,
		"-reporter.query.credentials-file="+creds,
		"-reporter.reports.dir="+dir)

	// Ten observations a minute apart, 10 to 100, on whole minutes.
	base := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	var obs []map[string]any
	for i := range 10 {
		obs = append(obs, map[string]any{"time": base.Add(time.Duration(i) * time.Minute).Unix(), "value": 10 * (i + 1)})
	}
	msg, err := json.Marshal(map[string]any{"probeId": 0, "resourceId": 101098, "messageId": 1, "sentTime": time.Now().Unix(),
		"data": []any{map[string]any{"descriptionId": 0, "type": "measurement", "observations": obs}}})
	require.NoError(t, err)
	got := post(t, tf.url, msg, demoProbe, demoSecret)
	require.Equal(t, http.StatusOK, got.code, got.body)
	last := base.Add(9 * time.Minute)
	require.Eventually(t, func() bool {
		code, r := query(t, tf.api, `cpu_usage_percent{resource="demo-host"}`, last.Unix(), demoProbe, demoSecret)
		return code == http.StatusOK && len(r.Data.Result) == 1
	}, 30*time.Second, 100*time.Millisecond, "the observations in the query API")

	// An alert as the ruler publishes it, firing since the third minute.
	firing := base.Add(2 * time.Minute)
	alert, err := json.Marshal(map[string]any{"labels": map[string]string{"alertname": "HighCPU", "severity": "critical"},
		"startsAt": firing, "endsAt": firing.Add(time.Hour), "state": "firing", "tenant": demoTenant, "fingerprint": "0123456789abcdef"})
	require.NoError(t, err)
	w := &kafka.Writer{Addr: kafka.TCP(tf.kafka), Topic: contract.TopicAlerts, AllowAutoTopicCreation: true}
	require.NoError(t, w.WriteMessages(context.Background(), kafka.Message{Key: []byte("demo/0123456789abcdef"), Value: alert,
		Headers: []kafka.Header{{Key: contract.HeaderTenant, Value: []byte(demoTenant)}}}))
	require.NoError(t, w.Close())

	// The hour ending 30 s after the last observation holds all ten.
	reporter := "http://" + tf.app.Addr(app.TargetReporter)
	at := last.Add(30 * time.Second).UTC().Format(time.RFC3339)
	resp, err := http.Post(reporter+"/api/v1/reports/demo/cpu-hour/run?at="+at, "", nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var doc struct {
		ID     string `json:"id"`
		Files  []string
		Panels []struct {
			Table []struct {
				Labels                   map[string]string
				Min, Avg, Max, P95, Last float64
			}
			Alerts []struct {
				Labels     map[string]string
				Start, End time.Time
			}
		}
	}
	require.NoError(t, json.Unmarshal(body, &doc))
	require.Len(t, doc.Panels[0].Table, 1)
	row := doc.Panels[0].Table[0]
	require.Equal(t, "demo-host", row.Labels["resource"])
	require.Equal(t, []float64{10, 55, 100, 95.5, 100}, []float64{row.Min, row.Avg, row.Max, row.P95, row.Last})

	// The alert from topic-alerts, firing to the end of the period.
	require.Len(t, doc.Panels[2].Alerts, 1)
	require.Equal(t, "HighCPU", doc.Panels[2].Alerts[0].Labels["alertname"])
	require.True(t, firing.Equal(doc.Panels[2].Alerts[0].Start))
	require.True(t, last.Add(30*time.Second).Equal(doc.Panels[2].Alerts[0].End))

	// The page lists it and serves the HTML with its chart.
	var html string
	for _, f := range doc.Files {
		if filepath.Ext(f) == ".html" {
			html = f
		}
	}
	require.NotEmpty(t, html)
	page := httpGet(t, reporter+"/reports/demo/cpu-hour/"+html)
	require.Contains(t, page, `<path class="series"`)
	require.Contains(t, page, "95.5")
	require.Contains(t, httpGet(t, reporter+"/reports?tenant=demo"), html)

	// The record on topic-reports: keyed by report, tenant header, valid.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := brokertest.ReadAll(ctx, tf.kafka, contract.TopicReports)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, "cpu-hour", string(recs[0].Key))
	require.Equal(t, "demo", headers(recs[0].Headers)[contract.HeaderTenant])
	sch := compileReportSchema(t)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(recs[0].Value))
	require.NoError(t, err)
	require.NoError(t, sch.Validate(v))
	var published struct{ ID string }
	require.NoError(t, json.Unmarshal(recs[0].Value, &published))
	require.Equal(t, doc.ID, published.ID)
}

func compileReportSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.ReportJSONSchema()))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource(schemas.ReportSchemaID, doc))
	sch, err := c.Compile(schemas.ReportSchemaID)
	require.NoError(t, err)
	return sch
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, fmt.Sprintf("GET %s: %s", url, b))
	return string(b)
}
