package ship

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// MQTTConfig is the MQTT output.
type MQTTConfig struct {
	// Broker is tcp://host:1883, ssl://host:8883, ws://… or wss://….
	Broker       string        `yaml:"broker"`
	Topic        string        `yaml:"topic"`
	ClientID     string        `yaml:"client_id"`
	Username     string        `yaml:"username"`
	Password     string        `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	Timeout      time.Duration `yaml:"timeout"`
	TLS          TLSConfig     `yaml:"tls"`
}

// Validate checks the configuration.
func (c MQTTConfig) Validate() error {
	var errs []error
	if c.Broker == "" {
		errs = append(errs, errors.New("broker is required (tcp://host:1883)"))
	}
	if c.Topic == "" || strings.ContainsAny(c.Topic, "+#") {
		errs = append(errs, fmt.Errorf("topic %q: want a topic name without wildcards", c.Topic))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("client_id is required"))
	}
	return errors.Join(errs...)
}

// MQTT publishes each batch as one Prometheus text-format message
// (timestamps in ms) with QoS 1: Send returns once the broker's PUBACK
// arrived.
type MQTT struct {
	cfg    MQTTConfig
	client mqtt.Client
}

// NewMQTT builds the output; it connects in the background and keeps
// reconnecting.
func NewMQTT(cfg MQTTConfig) (*MQTT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	pw, err := secret(cfg.Password, cfg.PasswordFile)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := cfg.TLS.Build()
	if err != nil {
		return nil, err
	}
	opts := mqtt.NewClientOptions().AddBroker(cfg.Broker).SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).SetPassword(pw).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).SetConnectTimeout(cfg.Timeout).
		// Messages the probe's queue holds need no second store: paho
		// keeps in flight only what Send waits for.
		SetCleanSession(true).SetOrderMatters(false)
	if tlsCfg != nil {
		opts.SetTLSConfig(tlsCfg)
	}
	c := mqtt.NewClient(opts)
	c.Connect()
	return &MQTT{cfg: cfg, client: c}, nil
}

// Send publishes the series. While the connection is down it fails at
// once instead of handing paho a message it would send later on its own,
// after the queue resent it.
func (o *MQTT) Send(ctx context.Context, _ uint64, series []samples.Series) error {
	if !o.client.IsConnectionOpen() {
		return fmt.Errorf("mqtt %s: not connected", o.cfg.Broker)
	}
	tok := o.client.Publish(o.cfg.Topic, 1, false, EncodeText(series))
	timeout := time.NewTimer(o.cfg.Timeout)
	defer timeout.Stop()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return ctx.Err()
	case <-timeout.C:
		return fmt.Errorf("mqtt %s: no puback within %s", o.cfg.Broker, o.cfg.Timeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("mqtt publish %s: %w", o.cfg.Topic, err)
	}
	return nil
}

// Close disconnects.
func (o *MQTT) Close() error {
	o.client.Disconnect(250)
	return nil
}
