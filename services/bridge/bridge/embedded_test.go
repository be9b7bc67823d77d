package bridge

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// A QoS-1 PUBLISH is acknowledged only once the bus acknowledged its
// records.
func TestPubackAfterBus(t *testing.T) {
	bus := newFakeBus()
	b := startBridge(t, testConfig(t), bus)
	gate := make(chan struct{})
	bus.setGate(gate)
	c := connect(t, b.MQTTAddr(), "dev1", "acme-device", "acme-secret")
	tok := c.Publish("acme/sites/s1/devices/d1/metrics/temp", 1, false, "21")
	require.False(t, tok.WaitTimeout(300*time.Millisecond), "PUBACK before the bus acknowledged")
	require.Empty(t, bus.topic(contract.TopicSamples))
	close(gate)
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	bus.awaitRecords(t, contract.TopicSamples, 1)
}

// While the bus is down nothing is acknowledged; once it is back every
// message is stored exactly once.
func TestBusDownNoPuback(t *testing.T) {
	bus := newFakeBus()
	b := startBridge(t, testConfig(t), bus)
	bus.setDown(true)
	c := connect(t, b.MQTTAddr(), "dev1", "acme-device", "acme-secret")
	var toks []paho.Token
	for i := range 5 {
		toks = append(toks, c.Publish("acme/sites/s1/devices/d1/metrics/temp", 1, false, strings.Repeat("1", i+1)))
	}
	require.Eventually(t, func() bool { return bus.attemptCount() > 3 }, 5*time.Second, 10*time.Millisecond, "retries")
	for _, tok := range toks {
		require.False(t, tok.WaitTimeout(10*time.Millisecond), "PUBACK while the bus is down")
	}
	require.Positive(t, counter(t, b.metrics.publishFails))
	bus.setDown(false)
	for _, tok := range toks {
		require.True(t, tok.WaitTimeout(5*time.Second))
		require.NoError(t, tok.Error())
	}
	recs := bus.awaitRecords(t, contract.TopicSamples, 5)
	require.Len(t, recs, 5)
	require.Equal(t, 5.0, counter(t, b.metrics.acked.WithLabelValues("acme")))
}

// mosquitto_pub QoS 1 into the embedded broker: the number lands on
// topic-samples, undecodable payloads on topic-dlq, both acknowledged.
func TestMosquittoPub(t *testing.T) {
	bus := newFakeBus()
	b := startBridge(t, testConfig(t), bus)
	out, err := mosquittoPub(t, b.MQTTAddr(), "-q", "1", "-u", "acme-device", "-P", "acme-secret", "-t", "acme/sites/s1/devices/d1/metrics/temp", "-m", "21.5")
	require.NoError(t, err, string(out))
	rec := bus.awaitRecords(t, contract.TopicSamples, 1)[0]
	require.Equal(t, "acme", rec.Metadata[contract.HeaderTenant])
	require.Equal(t, "acme/sites/s1/devices/d1/metrics/temp", rec.Metadata[contract.HeaderMQTTTopic])

	out, err = mosquittoPub(t, b.MQTTAddr(), "-q", "1", "-u", "acme-device", "-P", "acme-secret", "-t", "acme/sites/s1/devices/d1/metrics/temp", "-m", "warm")
	require.NoError(t, err, string(out))
	dead := bus.awaitRecords(t, contract.TopicDLQ, 1)[0]
	require.Equal(t, "warm", string(dead.Payload))
	require.Equal(t, "acme/sites/s1/devices/d1/metrics/temp", dead.Metadata[contract.HeaderSourceTopic])
	require.Equal(t, Stage, dead.Metadata[contract.HeaderStage])
	require.Contains(t, dead.Metadata[contract.HeaderError], "not a number")
	require.Equal(t, 1.0, counter(t, b.metrics.deadLettered.WithLabelValues("acme")))
}

// Tenant A cannot publish into or subscribe to tenant B's topics; a wrong
// password is refused.
func TestACL(t *testing.T) {
	bus := newFakeBus()
	b := startBridge(t, testConfig(t), bus)

	_, err := tryConnect(b.MQTTAddr(), "intruder", "acme-device", "wrong")
	require.Error(t, err)
	_, err = tryConnect(b.MQTTAddr(), "nobody", "", "")
	require.Error(t, err)
	require.Equal(t, 2.0, counter(t, b.metrics.refused.WithLabelValues("connect")))

	// MQTT 5 answers a refused publish with PUBACK "not authorized"; 3.1.1
	// drops the connection. Either way nothing is stored.
	out, err := mosquittoPub(t, b.MQTTAddr(), "-V", "mqttv5", "-q", "1", "-u", "beta-device", "-P", "beta-secret", "-t", "acme/sites/s1/devices/d1/metrics/temp", "-m", "1")
	t.Logf("mosquitto_pub into another tenant: %v %s", err, out)
	c := connect(t, b.MQTTAddr(), "beta1", "beta-device", "beta-secret")
	tok := c.Publish("acme/sites/s1/devices/d1/metrics/temp", 1, false, "1")
	tok.WaitTimeout(time.Second)
	require.Equal(t, 2.0, counter(t, b.metrics.refused.WithLabelValues("publish")))
	require.Empty(t, bus.topic(contract.TopicSamples))

	c = connect(t, b.MQTTAddr(), "beta2", "beta-device", "beta-secret")
	for filter, ok := range map[string]bool{
		"tmaflow/acme/alerts/#": false,
		"tmaflow/+/alerts/#":    false,
		"acme/#":                false,
		"#":                     false,
		"tmaflow/beta/alerts/#": true,
		"beta/d1/value":         true,
	} {
		st := c.Subscribe(filter, 1, nil)
		require.True(t, st.WaitTimeout(5*time.Second))
		code := st.(*paho.SubscribeToken).Result()[filter]
		require.Equal(t, ok, code < 0x80, "subscribe %s: code %#x", filter, code)
	}
	require.Equal(t, 4.0, counter(t, b.metrics.refused.WithLabelValues("subscribe")))

	// Its own tenant's publish goes through.
	tok = c.Publish("beta/d1/value", 1, false, "7")
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	rec := bus.awaitRecords(t, contract.TopicSamples, 1)[0]
	require.Equal(t, "beta", rec.Metadata[contract.HeaderTenant])
}

func alertRecord(t *testing.T, state string) *message.Message {
	t.Helper()
	body, err := json.Marshal(map[string]any{
		"labels": map[string]string{"alertname": "TooHot", "resource": "d1", "tenant": "acme"},
		"state":  state, "tenant": "acme", "startsAt": "2026-01-01T00:00:00Z",
	})
	require.NoError(t, err)
	return message.NewMessage("", body)
}

// retained subscribes to topic and returns the retained payload, nil if
// none comes within wait.
func retained(t *testing.T, addr, user, pass, topic string, wait time.Duration) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	c := connect(t, addr, "sub-"+time.Now().Format("150405.000000"), user, pass)
	tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
		select {
		case got <- m.Payload():
		default:
		}
	})
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	defer c.Unsubscribe(topic)
	select {
	case p := <-got:
		return p
	case <-time.After(wait):
		return nil
	}
}

// A firing alert is retained at its topic and cleared on resolve; the
// retained alert survives a restart of the broker over the same data dir.
func TestAlertRetainedAndPersisted(t *testing.T) {
	cfg := testConfig(t)
	cfg.MQTT.DataDir = t.TempDir()
	bus := newFakeBus()
	b := startBridge(t, cfg, bus)
	tmpl, err := parseTopicTemplate(cfg.Alerts.Topic)
	require.NoError(t, err)
	h := alertHandler(tmpl, b.embedded.sendAlert, b.metrics)
	const topic = "tmaflow/acme/alerts/d1/TooHot"

	firing := alertRecord(t, "firing")
	require.NoError(t, h(firing))
	require.JSONEq(t, string(firing.Payload), string(retained(t, b.MQTTAddr(), "acme-device", "acme-secret", topic, 5*time.Second)))

	b.stop(t)
	b = startBridge(t, cfg, bus)
	require.JSONEq(t, string(firing.Payload), string(retained(t, b.MQTTAddr(), "acme-device", "acme-secret", topic, 5*time.Second)), "retained alert after restart")

	h = alertHandler(tmpl, b.embedded.sendAlert, b.metrics)
	require.NoError(t, h(alertRecord(t, "resolved")))
	require.Nil(t, retained(t, b.MQTTAddr(), "acme-device", "acme-secret", topic, 300*time.Millisecond))
	require.Equal(t, 1.0, counter(t, b.metrics.alerts.WithLabelValues("resolved")))

	require.ErrorContains(t, h(message.NewMessage("", []byte("{"))), "decode alert")
}

// An alert for a device with a persistent session that is offline waits
// in its session, across a restart of the broker, and is delivered when
// the device reconnects without subscribing again.
func TestOfflineDeliverySurvivesRestart(t *testing.T) {
	cfg := testConfig(t)
	cfg.MQTT.DataDir = t.TempDir()
	bus := newFakeBus()
	b := startBridge(t, cfg, bus)
	const topic = "tmaflow/acme/alerts/d1/TooHot"
	got := make(chan []byte, 4)
	opts := func() *paho.ClientOptions {
		return paho.NewClientOptions().AddBroker("tcp://" + b.MQTTAddr()).SetClientID("persistent-dev").
			SetUsername("acme-device").SetPassword("acme-secret").SetCleanSession(false).SetProtocolVersion(4).
			SetAutoReconnect(false).SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Payload() })
	}
	c := paho.NewClient(opts())
	require.True(t, c.Connect().WaitTimeout(5*time.Second))
	tok := c.Subscribe(topic, 1, nil)
	require.True(t, tok.WaitTimeout(5*time.Second))
	require.NoError(t, tok.Error())
	c.Disconnect(50)

	tmpl, err := parseTopicTemplate(cfg.Alerts.Topic)
	require.NoError(t, err)
	firing := alertRecord(t, "firing")
	require.NoError(t, alertHandler(tmpl, b.embedded.sendAlert, b.metrics)(firing))
	b.stop(t)

	b = startBridge(t, cfg, bus)
	o := opts()
	o.Servers[0].Host = b.MQTTAddr()
	c = paho.NewClient(o)
	require.True(t, c.Connect().WaitTimeout(5*time.Second))
	defer c.Disconnect(50)
	select {
	case p := <-got:
		require.JSONEq(t, string(firing.Payload), string(p))
	case <-time.After(5 * time.Second):
		t.Fatal("queued alert not delivered after the restart")
	}
}

// The TLS listener takes MQTT over TLS with the same login; the plain one
// stays.
func TestTLSListener(t *testing.T) {
	cfg := testConfig(t)
	cfg.MQTT.TLSAddress = "127.0.0.1:0"
	cfg.MQTT.TLSCertFile, cfg.MQTT.TLSKeyFile = "testdata/tls.crt", "testdata/tls.key"
	bus := newFakeBus()
	b := startBridge(t, cfg, bus)
	require.NotEmpty(t, b.MQTTTLSAddr())
	host, port := splitAddr(t, b.MQTTTLSAddr())
	out, err := exec.Command(mosquittoBinary(t, "mosquitto_pub"), "-h", host, "-p", port, "--cafile", "testdata/tls.crt",
		"-q", "1", "-u", "acme-device", "-P", "acme-secret", "-t", "acme/sites/s1/devices/d1/metrics/temp", "-m", "1").CombinedOutput()
	require.NoError(t, err, string(out))
	bus.awaitRecords(t, contract.TopicSamples, 1)
}
