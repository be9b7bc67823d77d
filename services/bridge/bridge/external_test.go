package bridge

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// mosquitto is a real mosquitto broker on a free port with a persistent
// store in a temp dir.
type mosquitto struct {
	bin, conf, addr string
	cmd             *exec.Cmd
}

func startMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	m := &mosquitto{bin: peertest.Binary(t, "mosquitto"), addr: peertest.FreeAddr(t)}
	dir := t.TempDir()
	_, port := splitAddr(t, m.addr)
	m.conf = filepath.Join(dir, "mosquitto.conf")
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n", port, dir)
	require.NoError(t, os.WriteFile(m.conf, []byte(conf), 0o600))
	m.start(t)
	t.Cleanup(func() { m.stop(t) })
	return m
}

func (m *mosquitto) start(t *testing.T) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "-c", m.conf)
	require.NoError(t, m.cmd.Start())
	require.Eventually(t, func() bool {
		c, err := tryConnect(m.addr, "probe-ready", "", "")
		if err != nil {
			return false
		}
		c.Disconnect(0)
		return true
	}, 10*time.Second, 50*time.Millisecond, "mosquitto up")
}

func (m *mosquitto) stop(t *testing.T) {
	t.Helper()
	if m.cmd == nil {
		return
	}
	require.NoError(t, m.cmd.Process.Signal(os.Interrupt))
	_ = m.cmd.Wait() // exit status after a signal
	m.cmd = nil
}

func externalConfig(t *testing.T, url string) Config {
	cfg := testConfig(t)
	cfg.Registry, cfg.AuthDisabled = "", true
	cfg.External.URL = url
	cfg.External.ClientID = "bridge-test"
	return cfg
}

// External mode against a real mosquitto: QoS-1 messages are stored, and
// after a broker restart data flows again within 10 s.
func TestExternalMosquitto(t *testing.T) {
	mq := startMosquitto(t)
	bus := newFakeBus()
	startBridge(t, externalConfig(t, "tcp://"+mq.addr), bus)

	out, err := mosquittoPub(t, mq.addr, "-q", "1", "-t", "acme/sensors/d1", "-m", `{"temperature": 20}`)
	require.NoError(t, err, string(out))
	rec := bus.awaitRecords(t, contract.TopicSamples, 1)[0]
	require.Equal(t, "acme", rec.Metadata[contract.HeaderTenant])
	require.Equal(t, "acme/sensors/d1", rec.Metadata[contract.HeaderMQTTTopic])

	mq.stop(t)
	mq.start(t)
	restarted := time.Now()
	require.Eventually(t, func() bool {
		_, err := mosquittoPub(t, mq.addr, "-q", "1", "-t", "beta/d2/value", "-m", "5")
		return err == nil && len(bus.topic(contract.TopicSamples)) >= 2
	}, 10*time.Second, 200*time.Millisecond, "data flows again after the broker restart")
	t.Logf("flowing again %s after the broker restart", time.Since(restarted).Round(time.Millisecond))
}

// Messages published while the bridge is away wait in its persistent
// session and are stored when it comes back.
func TestExternalPersistentSession(t *testing.T) {
	mq := startMosquitto(t)
	bus := newFakeBus()
	cfg := externalConfig(t, "tcp://"+mq.addr)
	b := startBridge(t, cfg, bus)
	b.stop(t)
	for i := range 3 {
		out, err := mosquittoPub(t, mq.addr, "-q", "1", "-t", "beta/d1/value", "-m", fmt.Sprint(i))
		require.NoError(t, err, string(out))
	}
	startBridge(t, cfg, bus)
	bus.awaitRecords(t, contract.TopicSamples, 3)
}

// The watchdog renews quiet subscriptions and counts it, and stays ready.
func TestExternalStallWatchdog(t *testing.T) {
	mq := startMosquitto(t)
	cfg := externalConfig(t, "tcp://"+mq.addr)
	cfg.External.StallTimeout = 200 * time.Millisecond
	b := startBridge(t, cfg, newFakeBus())
	require.Eventually(t, func() bool { return counter(t, b.metrics.stalls) >= 2 }, 5*time.Second, 20*time.Millisecond)
	require.True(t, b.prober.IsReady())
	require.Equal(t, 1.0, counter(t, b.metrics.connected))
}

// In external mode alerts are retained at the external broker.
func TestExternalAlert(t *testing.T) {
	mq := startMosquitto(t)
	cfg := externalConfig(t, "tcp://"+mq.addr)
	b := startBridge(t, cfg, newFakeBus())
	tmpl, err := parseTopicTemplate(cfg.Alerts.Topic)
	require.NoError(t, err)
	firing := alertRecord(t, "firing")
	require.NoError(t, alertHandler(tmpl, b.external.sendAlert, b.metrics)(firing))
	require.JSONEq(t, string(firing.Payload), string(retained(t, mq.addr, "", "", "tmaflow/acme/alerts/d1/TooHot", 5*time.Second)))
}
