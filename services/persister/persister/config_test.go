package persister

import (
	"flag"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/service"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"bad address", func(c *Config) { c.ListenAddress = "9090" }, `listen-address "9090": want host:port`},
		{"no tsdb path", func(c *Config) { c.TSDB.Path = "" }, "tsdb.path must not be empty"},
		{"zero retention", func(c *Config) { c.TSDB.Retention = 0 }, "tsdb.retention must be > 0"},
		{"negative window", func(c *Config) { c.TSDB.OutOfOrderWindow = -time.Second }, "tsdb.out-of-order-window must be >= 0"},
		{"no window", func(c *Config) { c.TSDB.OutOfOrderWindow = 0 }, ""},
		{"short blocks", func(c *Config) { c.TSDB.BlockDuration = 30 * time.Second }, "tsdb.block-duration must be >= 1m"},
		{"zero query timeout", func(c *Config) { c.Query.Timeout = 0 }, "query.timeout must be > 0"},
		{"zero concurrency", func(c *Config) { c.Query.MaxConcurrency = 0 }, "query.max-concurrency must be > 0"},
		{"bad tenant header", func(c *Config) { c.API.TenantHeader = "X Org" }, `api.tenant-header "X Org" is not a valid header name`},
		{"no tenant header", func(c *Config) { c.API.TenantHeader = "" }, ""},
		{"bad default tenant", func(c *Config) { c.API.DefaultTenant = "a/b" }, `api.default-tenant "a/b" is not a valid tenant`},
		{"remote write", func(c *Config) { c.RemoteWrite.URLs = URLList{"https://mimir/api/v1/push"} }, ""},
		{"remote write bad url", func(c *Config) { c.RemoteWrite.URLs = URLList{"mimir:9009"} }, `remote-write.url "mimir:9009": want an http(s) URL`},
		{"remote write same group", func(c *Config) {
			c.RemoteWrite.URLs = URLList{"http://p/api/v1/write"}
			c.RemoteWrite.ConsumerGroup = c.ConsumerGroup
		}, "remote-write.consumer-group must differ from consumer-group"},
		{"remote write backoff", func(c *Config) {
			c.RemoteWrite.URLs = URLList{"http://p/api/v1/write"}
			c.RemoteWrite.MaxBackoff = time.Millisecond
		}, "remote-write.max-backoff (1ms) must be >= remote-write.min-backoff (100ms)"},
		{"basic and bearer", func(c *Config) { c.RemoteWrite.BasicAuthUsername = "u"; c.RemoteWrite.BearerToken = "t" }, "basic auth and bearer token exclude each other"},
		{"password without user", func(c *Config) { c.RemoteWrite.PasswordFile = "f" }, "remote-write.basic-auth.username is required with a password"},
		{"password twice", func(c *Config) {
			c.RemoteWrite.BasicAuthUsername, c.RemoteWrite.BasicAuthPassword, c.RemoteWrite.PasswordFile = "u", "p", "f"
		}, "exclude each other"},
		{"negative lag", func(c *Config) { c.Ready.MaxLag = -1 }, "ready.max-lag must be >= 0"},
		{"bus", func(c *Config) { c.Bus.MaxRetries = -1 }, "bus.retry.max must be >= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestFlagsRepeatableURL(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var c Config
	c.RegisterFlags(service.Prefixed{FS: fs, Prefix: "persister."})
	require.NoError(t, fs.Parse([]string{
		"-persister.remote-write.url=http://a/api/v1/write,http://b/api/v1/write",
		"-persister.remote-write.url", "http://c/api/v1/write",
		"-persister.tsdb.out-of-order-window=2h",
	}))
	require.Equal(t, URLList{"http://a/api/v1/write", "http://b/api/v1/write", "http://c/api/v1/write"}, c.RemoteWrite.URLs)
	require.Equal(t, 2*time.Hour, c.TSDB.OutOfOrderWindow)
	require.NoError(t, c.Validate())
}
