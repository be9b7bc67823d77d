package main_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker"
)

func startBroker(t *testing.T, dir, addr string) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Config{
		ListenAddress:          addr,
		DataDir:                dir,
		Retention:              time.Hour,
		RetentionBytes:         -1,
		RetentionCheckInterval: time.Hour,
		Partitions:             4,
	}, nil)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b
}

// message is a valid TMA message of the demo probe told apart by its
// messageId.
func message(id int) []byte {
	return fmt.Appendf(nil, `{"probeId":0,"resourceId":%d,"messageId":%d,"sentTime":1535980994,`+
		`"data":[{"descriptionId":0,"type":"measurement","observations":[{"time":1535980994,"value":%d}]}]}`, id%3, id, id)
}

// TestBrokerOutage stops the broker under a running tmaflow: posts get 503
// with Retry-After, never 2xx; once the broker is back on the same data dir
// and port, posts succeed and every message that got 2xx is in the topic.
func TestBrokerOutage(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, "127.0.0.1:0")
	addr := b.Addrs()[0]
	tf := startTmaflow(t, "-kafka.brokers="+addr, "-monitor.publish-timeout=1s")
	require.Equal(t, []string{addr}, tf.app.KafkaBrokers())

	accepted := map[string]bool{}
	id := 0
	send := func() answer {
		id++
		body := message(id)
		a := post(t, tf.url, body, demoProbe, demoSecret)
		if a.code >= 200 && a.code < 300 {
			accepted[string(body)] = true
		}
		return a
	}
	for range 3 {
		require.Equal(t, http.StatusOK, send().code)
	}

	b.Close()
	for range 3 {
		a := send()
		require.Equal(t, http.StatusServiceUnavailable, a.code, a.body)
		secs, err := strconv.Atoi(a.retryAfter)
		require.NoError(t, err, "Retry-After in seconds")
		require.Positive(t, secs)
	}
	require.Eventually(t, func() bool { return !tf.app.Prober().IsReady() }, 5*time.Second, 20*time.Millisecond,
		"not ready while the broker is down")

	startBroker(t, dir, addr)
	// The client reconnects on its own; until it has, posts may still
	// get 503, never a 2xx for data it did not store.
	require.Eventually(t, func() bool {
		a := send()
		require.Contains(t, []int{http.StatusOK, http.StatusServiceUnavailable}, a.code, a.body)
		return a.code == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)
	for range 3 {
		require.Equal(t, http.StatusOK, send().code)
	}
	require.Eventually(t, tf.app.Prober().IsReady, 5*time.Second, 20*time.Millisecond)

	inTopic := map[string]bool{}
	for _, r := range readTopic(t, addr) {
		inTopic[string(r.Value)] = true
	}
	for body := range accepted {
		require.True(t, inTopic[body], "acknowledged message lost: %s", body)
	}
	require.GreaterOrEqual(t, len(accepted), 7)
}
