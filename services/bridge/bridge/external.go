package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// external subscribes to an external broker (mosquitto, EMQX, HiveMQ,
// nats-server's MQTT) with a persistent session under a fixed client id
// and QoS-1 subscriptions, acknowledging each message only after the bus
// stored it.
type external struct {
	cfg     ExternalConfig
	client  paho.Client
	pipe    *pipeline
	now     func() time.Time
	metrics *metrics
	logger  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	// last is when a message or a (re)subscription last came, unix ns.
	last atomic.Int64
	// problem is why the subscriptions are not working ("" when they are).
	problem atomic.Pointer[string]
	mu      sync.Mutex // serialises subscribing
}

func newExternal(cfg ExternalConfig, pipe *pipeline, now func() time.Time, m *metrics, logger *slog.Logger) *external {
	x := &external{cfg: cfg, pipe: pipe, now: now, metrics: m, logger: logger}
	x.setProblem("connecting to the external mqtt broker")
	x.ctx, x.cancel = context.WithCancel(context.Background())
	opts := paho.NewClientOptions().
		AddBroker(cfg.URL).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		// A persistent session: the broker keeps QoS-1 messages for the
		// bridge while it is away.
		SetCleanSession(false).
		// Handlers run concurrently and ack when stored, in any order.
		SetOrderMatters(false).
		SetAutoAckDisabled(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(2 * time.Second).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetKeepAlive(10 * time.Second).
		// Messages of the stored session may come before the
		// subscriptions are renewed: the default handler takes them.
		SetDefaultPublishHandler(x.onMessage).
		SetOnConnectHandler(func(paho.Client) { x.onConnect() }).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			x.metrics.connected.Set(0)
			x.setProblem("external mqtt broker connection lost: " + err.Error())
			x.logger.Warn("external mqtt broker connection lost", "err", err)
		})
	x.client = paho.NewClient(opts)
	return x
}

// run connects (retrying until connected) and watches for stalls until ctx
// ends.
func (x *external) run(ctx context.Context) error {
	x.client.Connect() // retries in the background (SetConnectRetry)
	if x.cfg.StallTimeout <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(max(x.cfg.StallTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			x.checkStall()
		}
	}
}

// checkStall renews the subscriptions when a connected client got nothing
// for the stall timeout (a reconnect that lost them, a broker that forgot
// the session); when that fails it reconnects.
func (x *external) checkStall() {
	if !x.client.IsConnectionOpen() {
		return
	}
	idle := x.now().Sub(time.Unix(0, x.last.Load()))
	if idle < x.cfg.StallTimeout {
		return
	}
	x.metrics.stalls.Inc()
	x.logger.Warn("external mqtt subscriptions stalled, resubscribing", "idle", idle)
	if err := x.subscribe(); err != nil {
		x.setProblem("external mqtt subscriptions stalled: " + err.Error())
		x.logger.Warn("resubscribe failed, reconnecting", "err", err)
		x.client.Disconnect(100)
		x.client.Connect()
	}
}

func (x *external) onConnect() {
	x.metrics.reconnects.Inc()
	x.metrics.connected.Set(1)
	if err := x.subscribe(); err != nil {
		x.logger.Warn("subscribe at the external mqtt broker", "err", err)
		x.setProblem("external mqtt subscriptions missing: " + err.Error())
		// The stall check or the next reconnect tries again.
		return
	}
	x.logger.Info("external mqtt broker connected, subscribed", "url", x.cfg.URL)
}

// subscribe (re)subscribes every route's filter at QoS 1.
func (x *external) subscribe() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	filters := map[string]byte{}
	for f := range x.pipe.mapping.Load().filters() {
		filters[f] = 1
	}
	tok := x.client.SubscribeMultiple(filters, nil)
	if !tok.WaitTimeout(x.cfg.ConnectTimeout) {
		return errors.New("subscribe timed out")
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if st, ok := tok.(*paho.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code >= 0x80 {
				return fmt.Errorf("subscribe %s: refused (code %#x)", f, code)
			}
		}
	}
	x.last.Store(x.now().UnixNano())
	x.setProblem("")
	return nil
}

func (x *external) setProblem(p string) { x.problem.Store(&p) }

// notReady says why the external side is not working, "" when it is.
func (x *external) notReady() string { return *x.problem.Load() }

// onMessage stores a message and then acknowledges it; without the ack
// the broker sends it again in the session.
func (x *external) onMessage(_ paho.Client, msg paho.Message) {
	x.last.Store(x.now().UnixNano())
	tenant := x.pipe.mapping.Load().tenantOf(msg.Topic())
	err := x.pipe.handle(x.ctx, inbound{tenant: tenant, topic: msg.Topic(), probeID: -1, payload: msg.Payload(), received: x.now()})
	if err != nil {
		return // shutting down: left unacknowledged
	}
	msg.Ack()
}

// sendAlert publishes a retained QoS-1 message at the external broker.
func (x *external) sendAlert(topic string, payload []byte) error {
	tok := x.client.Publish(topic, 1, true, payload)
	if !tok.WaitTimeout(x.cfg.ConnectTimeout) {
		return errors.New("publish timed out")
	}
	return tok.Error()
}

// close releases held messages unacknowledged and disconnects.
func (x *external) close() {
	x.cancel()
	x.client.Disconnect(250)
	x.metrics.connected.Set(0)
}
