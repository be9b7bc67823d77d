package bridge

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config configures the bridge. Flag names carry no component prefix; the
// all-in-one adds "bridge.".
type Config struct {
	// ListenAddress serves /metrics, /-/healthy and /-/ready.
	ListenAddress string
	// Mapping is the YAML file of tenants, topic filters and formats.
	Mapping string
	// Registry holds the probes whose credentials MQTT clients log in
	// with; empty with AuthDisabled.
	Registry     string
	AuthDisabled bool

	MQTT     MQTTConfig
	External ExternalConfig
	Alerts   AlertsConfig

	// MaxInflight bounds the MQTT messages waiting for the bus at once;
	// clients beyond it wait unacknowledged (backpressure).
	MaxInflight int
	// MaxBatch bounds the messages of one Publish.
	MaxBatch int
	// PublishTimeout bounds one Publish; a failed one is retried after
	// RetryInterval until it succeeds or the bridge stops.
	PublishTimeout     time.Duration
	RetryInterval      time.Duration
	ReadyCheckInterval time.Duration
	ShutdownTimeout    time.Duration
	// MessagesPerSecond is each tenant's rate; above it clients are
	// slowed down (0: no limit).
	MessagesPerSecond float64
	Bus               bus.RouterConfig
	// Ready bounds the alert consumer's lag at start for /-/ready.
	Ready service.CatchUpConfig
}

// MQTTConfig is the embedded broker.
type MQTTConfig struct {
	ListenAddress string
	// DataDir keeps sessions, subscriptions, in-flight and retained
	// messages across restarts ("" keeps them in memory only).
	DataDir        string
	TLSAddress     string
	TLSCertFile    string
	TLSKeyFile     string
	TLSClientCA    string
	MaxPayloadSize int
}

// ExternalConfig selects an external broker instead of the embedded one.
type ExternalConfig struct {
	// URL is tcp://host:port, ssl://… or ws://…; empty: embedded broker.
	URL      string
	ClientID string
	Username string
	Password string
	// StallTimeout is how long subscriptions may deliver nothing while
	// connected before the bridge resubscribes (0: never).
	StallTimeout   time.Duration
	ConnectTimeout time.Duration
}

// AlertsConfig is the topic-alerts → MQTT direction.
type AlertsConfig struct {
	// Topic is the MQTT topic template of an alert; empty disables it.
	Topic         string
	ConsumerGroup string
}

// DefaultAlertTopic is where a tenant's devices find their alerts.
const DefaultAlertTopic = "tmaflow/{tenant}/alerts/{resource}/{alertname}"

// DefaultAlertsGroup is the consumer group of topic-alerts.
const DefaultAlertsGroup = "tmaflow-bridge-alerts"

// RegisterFlags registers the bridge flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.ListenAddress, "listen-address", "127.0.0.1:8083", "Address of /metrics, /-/healthy and /-/ready.")
	f.StringVar(&c.Mapping, "mapping", "", "YAML file mapping tenants' MQTT topics to formats and labels; without it every publish is refused. Reloaded on SIGHUP.")
	f.StringVar(&c.Registry, "auth.registry", "", "Registry file whose probes (name or id, secret) log in as MQTT username/password. Required unless -auth.disabled. Reloaded on SIGHUP.")
	f.BoolVar(&c.AuthDisabled, "auth.disabled", false, "Accept MQTT clients without credentials; every route of the mapping is open to everyone.")
	f.StringVar(&c.MQTT.ListenAddress, "mqtt.listen-address", "127.0.0.1:1883", "Address of the embedded MQTT broker (MQTT 3.1.1 and 5).")
	f.StringVar(&c.MQTT.DataDir, "mqtt.data-dir", "", "Directory of the embedded broker's sessions and retained messages (empty: memory only, lost on restart).")
	f.StringVar(&c.MQTT.TLSAddress, "mqtt.tls.listen-address", "", "Address of an MQTT over TLS listener (needs -mqtt.tls.cert-file).")
	f.StringVar(&c.MQTT.TLSCertFile, "mqtt.tls.cert-file", "", "TLS certificate (PEM) of the MQTT TLS listener.")
	f.StringVar(&c.MQTT.TLSKeyFile, "mqtt.tls.key-file", "", "TLS private key (PEM) of the MQTT TLS listener.")
	f.StringVar(&c.MQTT.TLSClientCA, "mqtt.tls.client-ca-file", "", "CA bundle (PEM) client certificates must chain to: mutual TLS.")
	f.IntVar(&c.MQTT.MaxPayloadSize, "mqtt.max-payload-bytes", 256<<10, "Largest MQTT packet accepted.")
	f.StringVar(&c.External.URL, "external.url", "", "External MQTT broker (tcp://host:1883, ssl://…) to subscribe to instead of embedding one.")
	f.StringVar(&c.External.ClientID, "external.client-id", "tmaflow-bridge", "Fixed client id of the external session (persistent: clean session off).")
	f.StringVar(&c.External.Username, "external.username", "", "Username at the external broker.")
	f.StringVar(&c.External.Password, "external.password", "", "Password at the external broker.")
	f.DurationVar(&c.External.StallTimeout, "external.stall-timeout", 0, "Resubscribe when connected subscriptions deliver nothing for this long (0: never).")
	f.DurationVar(&c.External.ConnectTimeout, "external.connect-timeout", 10*time.Second, "Timeout of one connection attempt to the external broker.")
	f.StringVar(&c.Alerts.Topic, "alerts.topic", DefaultAlertTopic, "MQTT topic of an alert: {tenant} and {<label>} are replaced (empty: alerts are not sent over MQTT).")
	f.StringVar(&c.Alerts.ConsumerGroup, "alerts.consumer-group", DefaultAlertsGroup, "Consumer group (Kafka or NATS) of topic-alerts.")
	f.IntVar(&c.MaxInflight, "max-inflight", 4096, "MQTT messages waiting for the bus at once; more wait unacknowledged.")
	f.IntVar(&c.MaxBatch, "max-batch", 1024, "Most MQTT messages published to the bus in one batch.")
	f.DurationVar(&c.PublishTimeout, "publish-timeout", 5*time.Second, "Longest wait for the bus to acknowledge a batch before it is retried.")
	f.DurationVar(&c.RetryInterval, "retry-interval", 500*time.Millisecond, "Wait before a failed batch is published again.")
	f.DurationVar(&c.ReadyCheckInterval, "ready-check-interval", 5*time.Second, "How often the bus is pinged for /-/ready.")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "Longest wait for the HTTP listener on shutdown.")
	f.Float64Var(&c.MessagesPerSecond, "limits.messages-per-second", 0, "MQTT messages/s per tenant; faster clients are slowed down (0: no limit).")
	c.Bus.RegisterFlags(f)
	c.Ready.RegisterFlags(f, "the alert consumer (topic-alerts)")
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	hostPort := func(name, addr string) {
		_, _, err := net.SplitHostPort(addr)
		check(err == nil, "%s %q: want host:port", name, addr)
	}
	hostPort("listen-address", c.ListenAddress)
	check(c.AuthDisabled || c.Registry != "", "auth.registry is required (or set auth.disabled explicitly)")
	check(!c.AuthDisabled || c.Registry == "", "auth.registry and auth.disabled exclude each other")
	if c.External.URL == "" {
		hostPort("mqtt.listen-address", c.MQTT.ListenAddress)
		if c.MQTT.TLSAddress != "" {
			hostPort("mqtt.tls.listen-address", c.MQTT.TLSAddress)
			check(c.MQTT.TLSCertFile != "" && c.MQTT.TLSKeyFile != "", "mqtt.tls.listen-address needs mqtt.tls.cert-file and mqtt.tls.key-file")
		}
		check(c.MQTT.TLSClientCA == "" || c.MQTT.TLSCertFile != "", "mqtt.tls.client-ca-file needs mqtt.tls.cert-file")
		check(c.MQTT.MaxPayloadSize > 0, "mqtt.max-payload-bytes must be > 0, got %d", c.MQTT.MaxPayloadSize)
	} else {
		check(strings.Contains(c.External.URL, "://"), "external.url %q: want scheme://host:port", c.External.URL)
		check(c.External.ClientID != "", "external.client-id must not be empty: a persistent session needs a fixed id")
		check(c.External.StallTimeout >= 0, "external.stall-timeout must be >= 0, got %s", c.External.StallTimeout)
		check(c.External.ConnectTimeout > 0, "external.connect-timeout must be > 0, got %s", c.External.ConnectTimeout)
	}
	if c.Alerts.Topic != "" {
		_, err := parseTopicTemplate(c.Alerts.Topic)
		check(err == nil, "alerts.topic: %v", err)
		check(c.Alerts.ConsumerGroup != "", "alerts.consumer-group must not be empty")
	}
	check(c.MaxInflight > 0, "max-inflight must be > 0, got %d", c.MaxInflight)
	check(c.MaxBatch > 0, "max-batch must be > 0, got %d", c.MaxBatch)
	check(c.PublishTimeout > 0, "publish-timeout must be > 0, got %s", c.PublishTimeout)
	check(c.RetryInterval > 0, "retry-interval must be > 0, got %s", c.RetryInterval)
	check(c.ReadyCheckInterval > 0, "ready-check-interval must be > 0, got %s", c.ReadyCheckInterval)
	check(c.ShutdownTimeout > 0, "shutdown-timeout must be > 0, got %s", c.ShutdownTimeout)
	check(c.MessagesPerSecond >= 0, "limits.messages-per-second must be >= 0, got %g", c.MessagesPerSecond)
	errs = append(errs, c.Bus.Validate(), c.Ready.Validate())
	return errors.Join(errs...)
}
