package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
)

// cpuMessage is a TMA message of the demo probe on demo-host (resource
// 101098) with one cpu_usage measurement (description 0) at now.
func cpuMessage(value float64, now time.Time) []byte {
	return fmt.Appendf(nil, `{"probeId":0,"resourceId":101098,"messageId":1,"sentTime":%[1]d,
"data":[{"descriptionId":0,"type":"measurement","observations":[{"time":%[1]d,"value":%[2]g}]}]}`, now.UnixMilli(), value)
}

// TestAlertFromPost: a value crossing the example rule's threshold, POSTed
// to the monitor, reaches a real Alertmanager's webhook through labeler,
// topic-metrics and ruler, and topic-alerts carries the firing alert.
func TestAlertFromPost(t *testing.T) {
	hook := peertest.NewWebhook(t)
	am := peertest.Alertmanager(t, hook.URL, "alertname", "resource")
	tf := startTmaflow(t, "-ruler.rules.dir=../../examples/rules", "-ruler.alertmanager.url="+am)

	require.Equal(t, 200, post(t, tf.url, cpuMessage(40, time.Now()), demoProbe, demoSecret).code)
	time.Sleep(200 * time.Millisecond)
	require.Empty(t, hook.Received(), "below the threshold")

	sent := time.Now()
	require.Equal(t, 200, post(t, tf.url, cpuMessage(97.5, sent), demoProbe, demoSecret).code)
	n := hook.Await(t, 30*time.Second, func(n peertest.Notification) bool {
		return n.Status == "firing" && len(n.Alerts) > 0 && n.Alerts[0].Labels["alertname"] == "HighCPUUsage"
	})
	t.Logf("POST to Alertmanager webhook: %s", n.At.Sub(sent))
	a := n.Alerts[0]
	require.Equal(t, "demo-host", a.Labels["resource"])
	require.Equal(t, demoTenant, a.Labels[ruler.TenantLabel])
	require.Equal(t, "warning", a.Labels["severity"])
	require.Equal(t, "CPU of demo-host at 97.5%", a.Annotations["summary"])

	// The same alert on topic-alerts, keyed and with the tenant header.
	var got ruler.Alert
	require.Eventually(t, func() bool {
		recs, err := brokertest.ReadAll(context.Background(), tf.kafka, contract.TopicAlerts)
		if err != nil {
			return false
		}
		for _, r := range recs {
			var al ruler.Alert
			require.NoError(t, json.Unmarshal(r.Value, &al))
			if al.Labels["alertname"] != "HighCPUUsage" {
				continue
			}
			for _, h := range r.Headers {
				if h.Key == contract.HeaderTenant {
					require.Equal(t, demoTenant, string(h.Value))
				}
			}
			require.NotEmpty(t, r.Key)
			got = al
			return true
		}
		return false
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, "firing", got.State)
	require.Equal(t, demoTenant, got.Tenant)
	require.Equal(t, "demo-host", got.Labels["resource"])
}
