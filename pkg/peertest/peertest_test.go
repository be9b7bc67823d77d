package peertest_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// An alert posted to the real Alertmanager reaches the webhook.
func TestAlertmanagerNotifiesWebhook(t *testing.T) {
	hook := peertest.NewWebhook(t)
	am := peertest.Alertmanager(t, hook.URL, "alertname", "resource")
	body := []byte(`[{"labels":{"alertname":"Test","resource":"r1"},"annotations":{"summary":"s"}}]`)
	resp, err := http.Post(am+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	n := hook.Await(t, 30*time.Second, func(n peertest.Notification) bool {
		return len(n.Alerts) == 1 && n.Alerts[0].Labels["resource"] == "r1"
	})
	require.Equal(t, "firing", n.Status)
	require.Equal(t, "s", n.Alerts[0].Annotations["summary"])
}
