package bridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/tmaflow/tmaflow/pkg/registry"
)

// verifier checks probe credentials (*registry.Registry).
type verifier interface {
	Verify(user, secret string) (registry.Probe, bool)
	File() *registry.File
	Reload() error
}

// client is what the bridge knows of a connected MQTT client.
type client struct {
	tenant  string // "" without authentication
	probeID int64  // -1 without authentication
}

// embedded is the bridge's own MQTT broker (mochi-mqtt): its hook holds
// each QoS-1/2 PUBLISH until the bus stored it, so the PUBACK/PUBREC means
// stored.
type embedded struct {
	mqtt.HookBase
	srv      *mqtt.Server
	pipe     *pipeline
	verifier verifier // nil: authentication off
	alerts   *topicTemplate
	now      func() time.Time
	metrics  *metrics
	logger   *slog.Logger

	// ctx ends on shutdown, releasing held publishes unacknowledged.
	ctx    context.Context
	cancel context.CancelFunc
	// clients maps a client id to its login. Entries outlive the
	// connection: a persistent session's messages are checked against its
	// tenant while it is offline.
	clients   sync.Map // string → client
	connected sync.Map // *mqtt.Client → struct{}: the connections counted
}

// dbFile is the embedded broker's store under -mqtt.data-dir.
const dbFile = "mqtt.db"

func newEmbedded(cfg Config, pipe *pipeline, v verifier, alerts *topicTemplate, now func() time.Time, m *metrics, logger *slog.Logger) (*embedded, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MQTT.MaxPayloadSize)
	e := &embedded{
		srv: mqtt.New(&mqtt.Options{
			Capabilities: caps,
			InlineClient: true,
			// mochi logs every connection at info, and refusals (which
			// the hooks log) without a message or with the packet.
			Logger: slog.New(mochiLog{logger.Handler(), slog.LevelWarn}),
		}),
		pipe:     pipe,
		verifier: v,
		alerts:   alerts,
		now:      now,
		metrics:  m,
		logger:   logger,
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	if err := e.srv.AddHook(e, nil); err != nil {
		return nil, fmt.Errorf("add mqtt hook: %w", err)
	}
	if cfg.MQTT.DataDir != "" {
		if err := os.MkdirAll(cfg.MQTT.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create mqtt data dir: %w", err)
		}
		path := filepath.Join(cfg.MQTT.DataDir, dbFile)
		err := e.srv.AddHook(newStore(), &bolt.Options{Path: path, Options: &bbolt.Options{Timeout: 2 * time.Second}})
		if err != nil {
			return nil, fmt.Errorf("open mqtt store %s: %w", path, err)
		}
	}
	if err := e.srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.MQTT.ListenAddress})); err != nil {
		e.close()
		return nil, fmt.Errorf("listen mqtt %s: %w", cfg.MQTT.ListenAddress, err)
	}
	if cfg.MQTT.TLSAddress != "" {
		tc, err := serverTLS(cfg.MQTT)
		if err == nil {
			err = e.srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tls", Address: cfg.MQTT.TLSAddress, TLSConfig: tc}))
		}
		if err != nil {
			e.close()
			return nil, fmt.Errorf("listen mqtt tls %s: %w", cfg.MQTT.TLSAddress, err)
		}
	}
	return e, nil
}

func serverTLS(c MQTTConfig) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read tls key pair: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.TLSClientCA != "" {
		pem, err := os.ReadFile(c.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("read tls client ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls client ca %s: no certificates", c.TLSClientCA)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// addr is the bound address of a listener ("" without it).
func (e *embedded) addr(id string) string {
	l, ok := e.srv.Listeners.Get(id)
	if !ok {
		return ""
	}
	return l.Address()
}

// serve starts accepting clients, restoring stored sessions first.
func (e *embedded) serve() error {
	if err := e.srv.Serve(); err != nil {
		return fmt.Errorf("serve mqtt: %w", err)
	}
	return nil
}

// close releases held publishes unacknowledged (clients send them again),
// then stops the listeners, clients and store.
func (e *embedded) close() {
	e.cancel()
	if err := e.srv.Close(); err != nil {
		e.logger.Warn("close mqtt broker", "err", err)
	}
}

// sendAlert publishes a retained QoS-1 message through the inline client.
func (e *embedded) sendAlert(topic string, payload []byte) error {
	return e.srv.Publish(topic, payload, true, 1)
}

// ID names the hook.
func (e *embedded) ID() string { return "tmaflow-bridge" }

// Provides says which hook methods the bridge implements.
func (e *embedded) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnDisconnect}, []byte{b})
}

// OnConnectAuthenticate checks the username/password against the
// registry's probes; the probe's tenant becomes the client's.
func (e *embedded) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	c := client{probeID: -1}
	if e.verifier != nil {
		p, ok := e.verifier.Verify(string(pk.Connect.Username), string(pk.Connect.Password))
		if !ok {
			e.metrics.refused.WithLabelValues("connect").Inc()
			e.logger.Warn("mqtt client refused", "client", cl.ID, "username", string(pk.Connect.Username),
				"remote", cl.Net.Remote, "reason", "bad username or password")
			return false
		}
		c = client{tenant: p.Tenant, probeID: p.ID}
	}
	e.clients.Store(cl.ID, c)
	e.connected.Store(cl, struct{}{})
	e.metrics.clients.Inc()
	return true
}

// OnDisconnect counts the client gone; its login stays for its session.
func (e *embedded) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	// Sessions restored from disk are "disconnected" without a connection.
	if _, ok := e.connected.LoadAndDelete(cl); ok {
		e.metrics.clients.Dec()
	}
}

// client returns the login of a client: from its connection, or for a
// session restored from disk, from the probe its username names.
func (e *embedded) client(cl *mqtt.Client) (client, bool) {
	if v, ok := e.clients.Load(cl.ID); ok {
		return v.(client), true
	}
	if e.verifier == nil {
		return client{probeID: -1}, true
	}
	user := string(cl.Properties.Username)
	for _, p := range e.verifier.File().Probes {
		if p.Name == user || strconv.FormatInt(p.ID, 10) == user {
			return client{tenant: p.Tenant, probeID: p.ID}, true
		}
	}
	return client{}, false
}

// OnACLCheck lets a client publish only under its tenant's prefix and
// subscribe only under its tenant's prefix or alert topics.
//
// A refused publish is logged at warn, once: mochi's own lines about it
// are dropped (mochiLog). Refused subscriptions and deliveries (read
// checks) are logged at debug.
func (e *embedded) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	reason := e.refusal(cl, topic, write)
	if reason == "" {
		return true
	}
	op, level, msg := "subscribe", slog.LevelDebug, "mqtt subscribe refused"
	if write {
		op, level, msg = "publish", slog.LevelWarn, "mqtt publish refused"
	}
	e.metrics.refused.WithLabelValues(op).Inc()
	e.logger.Log(context.Background(), level, msg, "client", cl.ID, "username", string(cl.Properties.Username),
		"topic", topic, "reason", reason)
	return false
}

// refusal says why cl may not publish (write) or read topic; "" if it may.
func (e *embedded) refusal(cl *mqtt.Client, topic string, write bool) string {
	if cl.Net.Inline {
		return ""
	}
	c, ok := e.client(cl)
	if !ok {
		return "username names no probe"
	}
	m := e.pipe.mapping.Load()
	if e.verifier == nil {
		// Without authentication every tenant's routes are open.
		if write && m.tenantOf(topic) == "" {
			return "topic under no tenant's prefix"
		}
		return ""
	}
	t := m.Tenants[c.tenant]
	if t != nil && strings.HasPrefix(topic, t.Prefix) {
		return ""
	}
	if !write && e.alerts != nil && strings.HasPrefix(topic, e.alerts.prefix(c.tenant)) {
		return ""
	}
	if write {
		return "topic outside the tenant's prefix"
	}
	return "topic outside the tenant's prefix and alert topics"
}

// OnPublish stores the message before mochi acknowledges it: returning
// ErrRejectPacket leaves it unacknowledged, so the client sends it again.
func (e *embedded) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	c, ok := e.client(cl)
	if !ok {
		return pk, packets.ErrRejectPacket
	}
	tenant := c.tenant
	if e.verifier == nil {
		tenant = e.pipe.mapping.Load().tenantOf(pk.TopicName)
	}
	err := e.pipe.handle(e.ctx, inbound{
		tenant: tenant, topic: pk.TopicName, probeID: c.probeID, payload: pk.Payload, received: e.now(),
	})
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			e.logger.Warn("mqtt publish not stored", "client", cl.ID, "topic", pk.TopicName, "err", err)
		}
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}
