package bridge

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// alertBus is Watermill's in-process pub/sub as the bridge's alert
// subscriber, with a lag the test sets.
type alertBus struct {
	*gochannel.GoChannel
	lag atomic.Int64
}

func (a *alertBus) LagOf(...string) func(context.Context) (int64, error) {
	return func(context.Context) (int64, error) { return a.lag.Load(), nil }
}

// Alerts consumed from topic-alerts are retained at their MQTT topic and
// cleared on resolve; the bridge is ready only once the alert consumer
// caught up.
func TestAlertsFromTopic(t *testing.T) {
	ab := &alertBus{GoChannel: gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16}, watermill.NopLogger{})}
	t.Cleanup(func() { require.NoError(t, ab.Close()) })
	ab.lag.Store(5000)
	cfg := testConfig(t)
	cfg.Ready.MaxLag = 10
	cfg.Ready.CheckInterval = 10 * time.Millisecond
	s, err := New(cfg, Options{Publisher: newFakeBus(), Alerts: ab, AlertsLag: ab.LagOf(contract.TopicAlerts), Registry: prometheus.NewRegistry()})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Execute() }()
	t.Cleanup(func() {
		s.Interrupt(nil)
		require.NoError(t, <-done)
	})
	time.Sleep(200 * time.Millisecond)
	require.False(t, s.prober.IsReady(), "not ready while the alert consumer lags")
	ab.lag.Store(0)
	require.Eventually(t, s.prober.IsReady, 5*time.Second, 10*time.Millisecond)

	const topic = "tmaflow/acme/alerts/d1/TooHot"
	firing := alertRecord(t, "firing")
	require.NoError(t, ab.Publish(contract.TopicAlerts, firing))
	require.Eventually(t, func() bool {
		return retained(t, s.MQTTAddr(), "acme-device", "acme-secret", topic, 200*time.Millisecond) != nil
	}, 5*time.Second, 50*time.Millisecond)
	require.NoError(t, ab.Publish(contract.TopicAlerts, alertRecord(t, "resolved")))
	require.Eventually(t, func() bool {
		return retained(t, s.MQTTAddr(), "acme-device", "acme-secret", topic, 200*time.Millisecond) == nil
	}, 5*time.Second, 50*time.Millisecond)
}
