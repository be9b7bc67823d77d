package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/services/bridge/bridge"
)

// mqttMapping routes the demo tenant's topics (TMA JSON, numbers,
// Prometheus text).
const mqttMapping = "testdata/mqtt/mapping.yaml"

// startMQTT runs tmaflow with the bridge's broker on a free port and
// returns its MQTT address.
func startMQTT(t *testing.T, args ...string) (*tmaflow, string) {
	t.Helper()
	addr := peertest.FreeAddr(t)
	tf := startTmaflow(t, append([]string{"-bridge.mapping=" + mqttMapping, "-bridge.mqtt.listen-address=" + addr}, args...)...)
	return tf, addr
}

// mosquitto runs a mosquitto client (mosquitto_pub, mosquitto_sub) against
// addr as the demo probe.
func mosquitto(t *testing.T, name, addr string, args ...string) *exec.Cmd {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return exec.Command(peertest.Binary(t, name), append([]string{"-h", host, "-p", port, "-u", demoProbe, "-P", demoSecret}, args...)...)
}

func mosquittoPub(t *testing.T, addr, topic string, payload []byte) {
	t.Helper()
	out, err := mosquitto(t, "mosquitto_pub", addr, "-q", "1", "-t", topic, "-m", string(payload)).CombinedOutput()
	require.NoError(t, err, string(out))
}

// pahoClient is a device with a persistent session (fixed id, clean
// session off) that reconnects by itself and resends what was not
// acknowledged.
func pahoClient(t *testing.T, addr, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername(demoProbe).SetPassword(demoSecret).SetCleanSession(false).SetProtocolVersion(4).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetMaxReconnectInterval(500 * time.Millisecond).SetKeepAlive(5 * time.Second))
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// sampleText is one Prometheus text sample with an explicit timestamp, so
// a message sent twice is one sample in the TSDB.
func sampleText(metric string, i int, base time.Time) []byte {
	return fmt.Appendf(nil, "%s %d %d\n", metric, i, base.Add(time.Duration(i)*time.Millisecond).UnixMilli())
}

// awaitCount waits until count_over_time of metric over the last hour is
// want, at the persister's API api.
func awaitCount(t *testing.T, api, metric string, want int) {
	t.Helper()
	q := "count_over_time(" + metric + "[1h])"
	last := ""
	require.Eventually(t, func() bool {
		code, r := query(t, api, q, time.Now().Unix(), demoProbe, demoSecret)
		if code != http.StatusOK || len(r.Data.Result) != 1 {
			last = fmt.Sprintf("code %d, %d series", code, len(r.Data.Result))
			return false
		}
		last = fmt.Sprint(r.Data.Result[0].Value[1])
		return last == strconv.Itoa(want)
	}, 60*time.Second, 200*time.Millisecond, "%s: want %d", q, want)
	t.Logf("%s = %s", q, last)
}

// TestMQTTEndToEnd: mosquitto_pub QoS 1 into the embedded broker; a plain
// number becomes a series with labels from its topic's levels, TMA JSON
// lands on topic-monitor byte for byte.
func TestMQTTEndToEnd(t *testing.T) {
	tf, addr := startMQTT(t)
	mosquittoPub(t, addr, "demo/sites/s1/devices/d1/metrics/temperature_celsius", []byte("21.5"))
	res := awaitSeries(t, tf, `temperature_celsius{site="s1",device="d1"}`, 1)
	got := res.Data.Result[0]
	require.Equal(t, "mqtt", got.Metric["job"])
	require.Equal(t, "21.5", got.Value[1])

	msg := cpuMessage(55, time.Now())
	mosquittoPub(t, addr, "demo/tma/demo-host", msg)
	require.Eventually(t, func() bool {
		for _, r := range readTopic(t, tf.kafka) {
			h := headers(r.Headers)
			if h[contract.HeaderSource] != contract.SourceMQTT {
				continue
			}
			require.Equal(t, string(msg), string(r.Value), "byte for byte")
			require.Equal(t, demoTenant, h[contract.HeaderTenant])
			require.Equal(t, "demo/tma/demo-host", h[contract.HeaderMQTTTopic])
			require.Equal(t, contract.ResourceKey(101098), r.Key)
			return true
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "TMA message from MQTT on topic-monitor")

	// An undecodable payload is acknowledged and dead-lettered.
	mosquittoPub(t, addr, "demo/sites/s1/devices/d1/metrics/temperature_celsius", []byte("warm"))
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		recs, err := brokertest.ReadAll(ctx, tf.kafka, contract.TopicDLQ)
		require.NoError(t, err)
		for _, r := range recs {
			h := headers(r.Headers)
			if h[contract.HeaderStage] == bridge.Stage {
				require.Equal(t, "warm", string(r.Value))
				require.Equal(t, "demo/sites/s1/devices/d1/metrics/temperature_celsius", h[contract.HeaderSourceTopic])
				require.Contains(t, h[contract.HeaderError], "not a number")
				return true
			}
		}
		return false
	}, 20*time.Second, 100*time.Millisecond, "dead letter of the undecodable payload")
}

// TestMQTTAlertRoundTrip: a value published over MQTT crosses the example
// rule's threshold and mosquitto_sub on the tenant's alert topic receives
// the alert; resolving it clears the retained message.
func TestMQTTAlertRoundTrip(t *testing.T) {
	_, addr := startMQTT(t, "-ruler.rules.dir=../../examples/rules")
	const topic = "tmaflow/demo/alerts/demo-host/HighCPUUsage"
	sub := mosquitto(t, "mosquitto_sub", addr, "-q", "1", "-t", topic, "-C", "1", "-W", "60")
	var out strings.Builder
	sub.Stdout = &out
	require.NoError(t, sub.Start())
	time.Sleep(300 * time.Millisecond) // subscribed (a retained alert would reach it anyway)

	sent := time.Now()
	mosquittoPub(t, addr, "demo/tma/demo-host", cpuMessage(97.5, sent))
	require.NoError(t, sub.Wait(), "mosquitto_sub got no alert")
	t.Logf("MQTT publish to MQTT alert: %s", time.Since(sent))
	var alert struct {
		Labels map[string]string `json:"labels"`
		State  string            `json:"state"`
	}
	require.NoError(t, json.Unmarshal([]byte(out.String()), &alert), out.String())
	require.Equal(t, "firing", alert.State)
	require.Equal(t, "HighCPUUsage", alert.Labels["alertname"])
	require.Equal(t, "demo-host", alert.Labels["resource"])

	mosquittoPub(t, addr, "demo/tma/demo-host", cpuMessage(40, time.Now().Add(time.Second)))
	require.Eventually(t, func() bool {
		// Exits 0 only when a retained message is there.
		err := mosquitto(t, "mosquitto_sub", addr, "-t", topic, "--retained-only", "-C", "1", "-W", "1").Run()
		return err != nil
	}, 20*time.Second, 100*time.Millisecond, "retained alert cleared on resolve")
}

// TestMQTTKafkaOutage: while Kafka is down QoS-1 publishes are not
// acknowledged; once it is back all are, and the TSDB holds every sample
// once.
func TestMQTTKafkaOutage(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, "127.0.0.1:0")
	kafkaAddr := b.Addrs()[0]
	tf, addr := startMQTT(t, "-kafka.brokers="+kafkaAddr, "-bridge.publish-timeout=500ms", "-bridge.retry-interval=100ms")
	c := pahoClient(t, addr, "outage-device")

	base := time.Now().Add(-time.Minute)
	const n = 20
	tok := c.Publish("demo/sites/s1/devices/d1/prom", 1, false, sampleText("outage_probe", 0, base))
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())

	b.Close()
	var toks []paho.Token
	for i := 1; i < n; i++ {
		toks = append(toks, c.Publish("demo/sites/s1/devices/d1/prom", 1, false, sampleText("outage_probe", i, base)))
	}
	time.Sleep(2 * time.Second)
	for _, tok := range toks {
		require.False(t, tok.WaitTimeout(time.Millisecond), "PUBACK while Kafka is down")
	}

	startBroker(t, dir, kafkaAddr)
	for _, tok := range toks {
		require.True(t, tok.WaitTimeout(30*time.Second), "PUBACK after Kafka is back")
		require.NoError(t, tok.Error())
	}
	awaitCount(t, tf.api, "outage_probe", n)
}

// TestMQTTKill9: the all-in-one is killed with SIGKILL while a device
// publishes QoS 1 with a persistent session; after a restart on the same
// data dir nothing is lost.
func TestMQTTKill9(t *testing.T) {
	dir := t.TempDir()
	mqttAddr, api := peertest.FreeAddr(t), peertest.FreeAddr(t)
	args := []string{"-data-dir=" + dir, "-registry=" + exampleRegistry,
		"-broker.listen-address=127.0.0.1:0", "-monitor.listen-address=127.0.0.1:0", "-labeler.listen-address=127.0.0.1:0",
		"-persister.listen-address=" + api, "-ruler.listen-address=127.0.0.1:0", "-persister.ready.settle=100ms",
		"-bridge.listen-address=127.0.0.1:0", "-bridge.mqtt.listen-address=" + mqttAddr, "-bridge.mapping=" + mqttMapping}
	p := startProcess(t, args...)
	p.waitLog(t, "mqtt broker listening")
	c := pahoClient(t, mqttAddr, "kill9-device")

	base := time.Now().Add(-time.Minute)
	const n, killAt = 300, 100
	var toks []paho.Token
	for i := range n {
		if i == killAt {
			require.NoError(t, p.cmd.Process.Kill())
			require.Error(t, p.wait(t), "killed")
			p = startProcess(t, args...)
		}
		toks = append(toks, c.Publish("demo/sites/s1/devices/d1/prom", 1, false, sampleText("kill9_probe", i, base)))
	}
	for i, tok := range toks {
		require.True(t, tok.WaitTimeout(60*time.Second), "message %d not acknowledged", i)
		require.NoError(t, tok.Error())
	}
	awaitCount(t, "http://"+api+"/api/v1", "kill9_probe", n)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	if err := p.wait(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("tmaflow exit: %v", err)
	}
}
