package monitor

import (
	"encoding/json"
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
		{"defaults with registry", func(c *Config) {}, ""},
		{"no registry", func(c *Config) { c.Auth.Registry = "" }, "auth.registry is required (or set auth.disabled explicitly)"},
		{"auth disabled on loopback", func(c *Config) { c.Auth = AuthConfig{Disabled: true} }, ""},
		{"auth disabled on localhost", func(c *Config) { c.Auth = AuthConfig{Disabled: true}; c.ListenAddress = "localhost:80" }, ""},
		{"auth disabled on ::1", func(c *Config) { c.Auth = AuthConfig{Disabled: true}; c.ListenAddress = "[::1]:80" }, ""},
		{"auth disabled and registry", func(c *Config) { c.Auth.Disabled = true }, "auth.registry and auth.disabled exclude each other"},
		{"auth disabled on all interfaces", func(c *Config) { c.Auth = AuthConfig{Disabled: true}; c.ListenAddress = ":8080" },
			"refusing to serve without authentication on non-loopback :8080"},
		{"auth disabled on 0.0.0.0", func(c *Config) { c.Auth = AuthConfig{Disabled: true}; c.ListenAddress = "0.0.0.0:8080" },
			"refusing to serve without authentication"},
		{"auth disabled on a host name", func(c *Config) { c.Auth = AuthConfig{Disabled: true}; c.ListenAddress = "monitor.example:8080" },
			"refusing to serve without authentication"},
		{"auth disabled, insecure", func(c *Config) { c.Auth = AuthConfig{Disabled: true}; c.ListenAddress = ":8080"; c.Insecure = true }, ""},
		{"auth on all interfaces", func(c *Config) { c.ListenAddress = ":8080" }, ""},
		{"bad address", func(c *Config) { c.ListenAddress = "8080" }, `listen-address "8080": want host:port`},
		{"cert without key", func(c *Config) { c.TLS.CertFile = "c.pem" }, "tls.cert-file and tls.key-file go together"},
		{"key without cert", func(c *Config) { c.TLS.KeyFile = "k.pem" }, "tls.cert-file and tls.key-file go together"},
		{"client ca without cert", func(c *Config) { c.TLS.ClientCAFile = "ca.pem" }, "tls.client-ca-file needs tls.cert-file and tls.key-file"},
		{"tls", func(c *Config) { c.TLS = TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"} }, ""},
		{"zero body", func(c *Config) { c.MaxBodyBytes = 0 }, "max-body-bytes must be > 0"},
		{"zero inflight", func(c *Config) { c.MaxInflight = 0 }, "max-inflight must be > 0"},
		{"zero publish timeout", func(c *Config) { c.PublishTimeout = 0 }, "publish-timeout must be > 0"},
		{"zero retry after", func(c *Config) { c.RetryAfter = 0 }, "retry-after must be > 0"},
		{"zero shutdown timeout", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown-timeout must be > 0"},
		{"zero ready interval", func(c *Config) { c.ReadyCheckInterval = 0 }, "ready-check-interval must be > 0"},
		{"anonymous on loopback", func(c *Config) { c.Auth.AnonymousTenant = "demo" }, ""},
		{"anonymous on localhost", func(c *Config) { c.Auth.AnonymousTenant = "demo"; c.ListenAddress = "localhost:8080" }, ""},
		{"anonymous on all interfaces", func(c *Config) { c.Auth.AnonymousTenant = "demo"; c.ListenAddress = ":8080" },
			"refusing auth.anonymous-tenant on non-loopback :8080: listen on 127.0.0.1 or set auth.anonymous-allow-remote"},
		{"anonymous on 0.0.0.0, allowed", func(c *Config) {
			c.Auth.AnonymousTenant = "demo"
			c.Auth.AnonymousAllowRemote = true
			c.ListenAddress = "0.0.0.0:8080"
		}, ""},
		{"allow remote alone", func(c *Config) { c.Auth.AnonymousAllowRemote = true }, "auth.anonymous-allow-remote needs auth.anonymous-tenant"},
		{"anonymous with auth disabled", func(c *Config) { c.Auth = AuthConfig{Disabled: true, AnonymousTenant: "demo"} },
			"auth.anonymous-tenant needs auth.registry"},
		{"insecure does not allow anonymous", func(c *Config) { c.Auth.AnonymousTenant = "demo"; c.Insecure = true; c.ListenAddress = ":8080" },
			"refusing auth.anonymous-tenant"},
		{"zero decoded bytes", func(c *Config) { c.MaxDecodedBytes = 0 }, "max-decoded-bytes must be > 0"},
		{"negative series limit", func(c *Config) { c.Limits.MaxSeriesPerRequest = -1 }, "limits.max-series-per-request must be >= 0"},
		{"negative rate", func(c *Config) { c.Limits.SamplesPerSecond = -1 }, "limits.samples-per-second must be >= 0"},
		{"negative burst", func(c *Config) { c.Limits.SamplesBurst = -1 }, "limits.samples-burst must be >= 0"},
		{"limits", func(c *Config) {
			c.Limits = LimitsConfig{MaxSeriesPerRequest: 10, SamplesPerSecond: 1e5, SamplesBurst: 2e5}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Auth.Registry = "registry.yaml"
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

func TestConfigFlags(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var c Config
	c.RegisterFlags(service.Prefixed{FS: fs, Prefix: "monitor."})
	require.NoError(t, fs.Parse([]string{
		"-monitor.listen-address=:9000", "-monitor.max-body-bytes=10", "-monitor.max-inflight=3",
		"-monitor.publish-timeout=2s", "-monitor.retry-after=4s", "-monitor.auth.disabled", "-monitor.insecure",
		"-monitor.tls.cert-file=c", "-monitor.tls.key-file=k", "-monitor.tls.client-ca-file=ca",
	}))
	want := DefaultConfig()
	want.ListenAddress, want.MaxBodyBytes, want.MaxInflight = ":9000", 10, 3
	want.PublishTimeout, want.RetryAfter = 2*time.Second, 4*time.Second
	want.Auth.Disabled, want.Insecure = true, true
	want.TLS = TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}
	require.Equal(t, want, c)
	require.NoError(t, c.Validate())

	d := DefaultConfig()
	require.Equal(t, "127.0.0.1:8080", d.ListenAddress)
	require.EqualValues(t, 1<<20, d.MaxBodyBytes)
	require.Equal(t, 1024, d.MaxInflight)
	require.Equal(t, 5*time.Second, d.PublishTimeout)
}

func TestNewRejects(t *testing.T) {
	_, err := New(testConfig(), Options{})
	require.ErrorContains(t, err, "no publisher")
	cfg := testConfig()
	cfg.Auth.Registry = "testdata/missing.yaml"
	_, err = New(cfg, Options{Publisher: &fakePublisher{}})
	require.ErrorContains(t, err, "read registry testdata/missing.yaml")
	cfg = testConfig()
	cfg.ListenAddress = ":8080"
	cfg.Auth = AuthConfig{Disabled: true}
	_, err = New(cfg, Options{Publisher: &fakePublisher{}})
	require.ErrorContains(t, err, "refusing to serve without authentication")
	cfg = testConfig()
	cfg.TLS = TLSConfig{CertFile: "testdata/missing.pem", KeyFile: "testdata/missing.pem"}
	_, err = New(cfg, Options{Publisher: &fakePublisher{}})
	require.ErrorContains(t, err, "load tls certificate testdata/missing.pem")
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"":                                  true,
		"application/json":                  true,
		"APPLICATION/JSON":                  true,
		"application/json;charset=utf-8":    true,
		" application/json ; charset=x":     true,
		"application/problem+json":          true,
		"application/+json":                 false,
		"application/jsonp":                 false,
		"application/json-seq":              false,
		"text/json":                         false,
		"text/plain":                        false,
		"application/x-www-form-urlencoded": false,
		"multipart/form-data; boundary=x":   false,
		"application":                       false,
	} {
		require.Equal(t, want, isJSON(ct), ct)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `quote " backslash \ slash /`, "ctl \x00\x01\x1f\t\n\r", "utf8 é ✓ 🚀",
		"bad \xff\xfe utf8", "js \u2028 \u2029", "<html>&",
	} {
		b := appendString(nil, s)
		var got string
		require.NoError(t, json.Unmarshal(b, &got), "%s", b)
		want, err := json.Marshal(s) // encoding/json's reading of the same string
		require.NoError(t, err)
		var wantStr string
		require.NoError(t, json.Unmarshal(want, &wantStr))
		require.Equal(t, wantStr, got)
	}
}

func TestRetryAfterRounding(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", time.Minute: "60",
	} {
		c := DefaultConfig()
		c.RetryAfter = d
		require.Equal(t, []string{want}, newResponses(c).retryAfter, d.String())
	}
}
