package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"no registry", func(c *Config) { c.Registry = "" }, "auth.registry is required"},
		{"registry and disabled", func(c *Config) { c.AuthDisabled = true }, "exclude each other"},
		{"bad mqtt address", func(c *Config) { c.MQTT.ListenAddress = "1883" }, "mqtt.listen-address"},
		{"tls without cert", func(c *Config) { c.MQTT.TLSAddress = "127.0.0.1:8883" }, "needs mqtt.tls.cert-file"},
		{"external url", func(c *Config) { c.External.URL = "host:1883" }, "want scheme://host:port"},
		{"external without id", func(c *Config) { c.External.URL, c.External.ClientID = "tcp://h:1", "" }, "fixed id"},
		{"bad alert topic", func(c *Config) { c.Alerts.Topic = "alerts/{alertname}" }, "first placeholder must be {tenant}"},
		{"alerts off", func(c *Config) { c.Alerts.Topic, c.Alerts.ConsumerGroup = "", "" }, ""},
		{"zero inflight", func(c *Config) { c.MaxInflight = 0 }, "max-inflight"},
		{"negative limit", func(c *Config) { c.MessagesPerSecond = -1 }, "limits.messages-per-second"},
		{"zero retry", func(c *Config) { c.RetryInterval = 0 }, "retry-interval"},
		{"negative stall", func(c *Config) { c.External.URL, c.External.StallTimeout = "tcp://h:1", -time.Second }, "stall-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t)
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// A mapping that does not parse keeps the service from starting; on
// reload the previous one stays.
func TestBadMapping(t *testing.T) {
	cfg := testConfig(t)
	cfg.Mapping = "testdata/registry.yaml"
	_, err := New(cfg, Options{Publisher: newFakeBus()})
	require.ErrorContains(t, err, "read mapping testdata/registry.yaml")

	cfg = testConfig(t)
	b := startBridge(t, cfg, newFakeBus())
	b.cfg.Mapping = "testdata/registry.yaml"
	require.ErrorContains(t, b.Reload(), "reload bridge")
	require.NotNil(t, b.pipe.mapping.Load().Tenants["acme"])
}
