package bridge

import (
	"errors"
	"flag"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// fakeBus is an in-process publisher: it keeps what it acknowledged, fails
// while down, and holds publishes while gated.
type fakeBus struct {
	mu       sync.Mutex
	records  map[string][]*message.Message
	attempts int
	down     bool
	gate     chan struct{} // non-nil: Publish waits for it to close
}

var errDown = errors.New("bus down")

func newFakeBus() *fakeBus { return &fakeBus{records: map[string][]*message.Message{}} }

func (b *fakeBus) Publish(topic string, msgs ...*message.Message) error {
	b.mu.Lock()
	b.attempts++
	gate, down := b.gate, b.down
	b.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if down {
		return errDown
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.records[topic] = append(b.records[topic], msgs...)
	return nil
}

func (b *fakeBus) Close() error { return nil }

func (b *fakeBus) setDown(down bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = down
}

func (b *fakeBus) setGate(g chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gate = g
}

// topic returns the records acknowledged on topic.
func (b *fakeBus) topic(name string) []*message.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*message.Message(nil), b.records[name]...)
}

func (b *fakeBus) attemptCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.attempts
}

// awaitRecords waits until topic holds n records.
func (b *fakeBus) awaitRecords(t *testing.T, topic string, n int) []*message.Message {
	t.Helper()
	require.Eventually(t, func() bool { return len(b.topic(topic)) >= n }, 10*time.Second, 10*time.Millisecond, "records on %s", topic)
	got := b.topic(topic)
	require.Len(t, got, n)
	return got
}

// testConfig is the flag defaults with test listeners, fixtures and short
// retries.
func testConfig(testing.TB) Config {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(service.Prefixed{FS: fs})
	c.ListenAddress = "127.0.0.1:0"
	c.MQTT.ListenAddress = "127.0.0.1:0"
	c.Mapping = "testdata/mapping.yaml"
	c.Registry = "testdata/registry.yaml"
	c.RetryInterval = 20 * time.Millisecond
	c.PublishTimeout = time.Second
	c.ReadyCheckInterval = 100 * time.Millisecond
	return c
}

type running struct {
	*Service
	reg  *prometheus.Registry
	done chan error
}

// startBridge starts a bridge over bus and stops it at cleanup.
func startBridge(t *testing.T, cfg Config, bus *fakeBus) *running {
	t.Helper()
	return startBridgeWith(t, cfg, bus, Options{})
}

// startBridgeWith is startBridge with opts (their publisher and registry
// are bus and a new registry).
func startBridgeWith(t *testing.T, cfg Config, bus *fakeBus, opts Options) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts.Publisher, opts.Registry = bus, reg
	s, err := New(cfg, opts)
	require.NoError(t, err)
	r := &running{Service: s, reg: reg, done: make(chan error, 1)}
	go func() { r.done <- s.Execute() }()
	t.Cleanup(func() { r.stop(t) })
	require.Eventually(t, s.prober.IsReady, 10*time.Second, 10*time.Millisecond, "bridge ready")
	return r
}

// stop ends the bridge once and waits for Execute.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.Interrupt(nil)
	select {
	case err, ok := <-r.done:
		if ok {
			require.NoError(t, err)
			close(r.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bridge did not stop")
	}
}

// connect returns a connected paho client of the embedded broker.
func connect(t *testing.T, addr, id, user, pass string) paho.Client {
	t.Helper()
	c, err := tryConnect(addr, id, user, pass)
	require.NoError(t, err)
	t.Cleanup(func() { c.Disconnect(50) })
	return c
}

func tryConnect(addr, id, user, pass string) (paho.Client, error) {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername(user).SetPassword(pass).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4))
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	return c, tok.Error()
}

// mosquittoPub runs mosquitto_pub against addr and returns its output.
func mosquittoPub(t *testing.T, addr string, args ...string) ([]byte, error) {
	t.Helper()
	host, port := splitAddr(t, addr)
	cmd := exec.Command(mosquittoBinary(t, "mosquitto_pub"), append([]string{"-h", host, "-p", port}, args...)...)
	return cmd.CombinedOutput()
}

func mosquittoBinary(t *testing.T, name string) string {
	t.Helper()
	return peertest.Binary(t, name)
}

func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	return host, port
}

func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}
