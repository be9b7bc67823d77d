package monitor

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config configures the monitor service. Flag names carry no component
// prefix; embedding binaries add one with service.Prefixed.
type Config struct {
	ListenAddress      string
	MaxBodyBytes       int64
	MaxInflight        int
	PublishTimeout     time.Duration
	RetryAfter         time.Duration
	ShutdownTimeout    time.Duration
	ReadyCheckInterval time.Duration
	// MaxDecodedBytes bounds a request body after decompression
	// (remote_write's snappy, gzip text pushes).
	MaxDecodedBytes int64
	Limits          LimitsConfig
	Auth            AuthConfig
	// Insecure allows serving without authentication on a non-loopback
	// address.
	Insecure bool
	TLS      TLSConfig
}

// AuthConfig selects how probes authenticate.
type AuthConfig struct {
	Registry string // registry file with the probes' secret hashes
	Disabled bool
	// AnonymousTenant, when set, takes requests without credentials into
	// this tenant (unmodified TMA probes send none); wrong credentials are
	// still refused.
	AnonymousTenant string
	// AnonymousAllowRemote allows AnonymousTenant on a non-loopback
	// listen address.
	AnonymousAllowRemote bool
}

// TLSConfig holds the server certificate and the optional client CA that
// turns on mutual TLS.
type TLSConfig struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string
}

// Enabled reports whether the server speaks TLS.
func (c TLSConfig) Enabled() bool { return c.CertFile != "" }

// RegisterFlags registers the monitor flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.ListenAddress, "listen-address", "127.0.0.1:8080", "Address of the ingest endpoints (POST /monitor, /api/v1/write, /api/v1/import/prometheus, /metrics/job/…), /metrics, /-/healthy and /-/ready.")
	f.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 1<<20, "Largest request body accepted; larger ones get 413.")
	f.IntVar(&c.MaxInflight, "max-inflight", 1024, "Requests handled at once; more get 429 with Retry-After.")
	f.DurationVar(&c.PublishTimeout, "publish-timeout", 5*time.Second, "Longest wait for the broker to acknowledge a request's records; then 503.")
	f.DurationVar(&c.RetryAfter, "retry-after", time.Second, "Retry-After sent with 429 and 503 (rounded up to whole seconds).")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "Longest wait for in-flight requests on shutdown.")
	f.DurationVar(&c.ReadyCheckInterval, "ready-check-interval", 5*time.Second, "How often the broker is pinged for /-/ready.")
	f.Int64Var(&c.MaxDecodedBytes, "max-decoded-bytes", 32<<20, "Largest body after decompression (remote_write snappy, gzip text pushes); larger ones get 413.")
	f.IntVar(&c.Limits.MaxSeriesPerRequest, "limits.max-series-per-request", 0, "Most series in one remote write or pushed body; more get 413 (0: no limit).")
	f.Float64Var(&c.Limits.SamplesPerSecond, "limits.samples-per-second", 0, "Samples/s each tenant may send through remote write and pushes; more get 429 with Retry-After (0: no limit).")
	f.IntVar(&c.Limits.SamplesBurst, "limits.samples-burst", 0, "Samples a tenant may send at once above its rate (0: one second's worth).")
	f.StringVar(&c.Auth.Registry, "auth.registry", "", "Registry file with the probes (id, name, tenant, secret_hash). Required unless -auth.disabled. Reloaded on SIGHUP.")
	f.BoolVar(&c.Auth.Disabled, "auth.disabled", false, "Accept data without credentials, under the default tenant.")
	f.StringVar(&c.Auth.AnonymousTenant, "auth.anonymous-tenant", "", "Accept requests without credentials into this tenant (unmodified TMA probes send none); wrong credentials still get 401. Only on a loopback listen address unless -auth.anonymous-allow-remote.")
	f.BoolVar(&c.Auth.AnonymousAllowRemote, "auth.anonymous-allow-remote", false, "Allow -auth.anonymous-tenant on a non-loopback listen address: anyone who reaches it can write into that tenant.")
	f.BoolVar(&c.Insecure, "insecure", false, "Allow -auth.disabled on a non-loopback listen address.")
	f.StringVar(&c.TLS.CertFile, "tls.cert-file", "", "TLS certificate (PEM); enables HTTPS. Reloaded on SIGHUP.")
	f.StringVar(&c.TLS.KeyFile, "tls.key-file", "", "TLS private key (PEM).")
	f.StringVar(&c.TLS.ClientCAFile, "tls.client-ca-file", "", "CA bundle (PEM) that client certificates must chain to: mutual TLS.")
}

// DefaultConfig returns the flag defaults, for tests and embedding callers.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(defaultsOnly{})
	return c
}

// Validate checks the configuration, refusing unauthenticated listening on
// non-loopback addresses unless Insecure.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	_, _, err := net.SplitHostPort(c.ListenAddress)
	check(err == nil, "listen-address %q: want host:port", c.ListenAddress)
	check(c.MaxBodyBytes > 0, "max-body-bytes must be > 0, got %d", c.MaxBodyBytes)
	check(c.MaxDecodedBytes > 0, "max-decoded-bytes must be > 0, got %d", c.MaxDecodedBytes)
	check(c.Limits.MaxSeriesPerRequest >= 0, "limits.max-series-per-request must be >= 0, got %d", c.Limits.MaxSeriesPerRequest)
	check(c.Limits.SamplesPerSecond >= 0, "limits.samples-per-second must be >= 0, got %g", c.Limits.SamplesPerSecond)
	check(c.Limits.SamplesBurst >= 0, "limits.samples-burst must be >= 0, got %d", c.Limits.SamplesBurst)
	check(c.MaxInflight > 0, "max-inflight must be > 0, got %d", c.MaxInflight)
	check(c.PublishTimeout > 0, "publish-timeout must be > 0, got %s", c.PublishTimeout)
	check(c.RetryAfter > 0, "retry-after must be > 0, got %s", c.RetryAfter)
	check(c.ShutdownTimeout > 0, "shutdown-timeout must be > 0, got %s", c.ShutdownTimeout)
	check(c.ReadyCheckInterval > 0, "ready-check-interval must be > 0, got %s", c.ReadyCheckInterval)
	check(c.Auth.Disabled || c.Auth.Registry != "", "auth.registry is required (or set auth.disabled explicitly)")
	check(!c.Auth.Disabled || c.Auth.Registry == "", "auth.registry and auth.disabled exclude each other")
	check(!c.Auth.Disabled || c.Auth.AnonymousTenant == "", "auth.anonymous-tenant needs auth.registry: with auth.disabled every request goes to the default tenant")
	check(c.Auth.AnonymousTenant != "" || !c.Auth.AnonymousAllowRemote, "auth.anonymous-allow-remote needs auth.anonymous-tenant")
	if err == nil {
		check(!c.Auth.Disabled || c.Insecure || isLoopback(c.ListenAddress),
			"refusing to serve without authentication on non-loopback %s: set auth.registry, listen on 127.0.0.1, or set insecure", c.ListenAddress)
		check(c.Auth.AnonymousTenant == "" || c.Auth.AnonymousAllowRemote || isLoopback(c.ListenAddress),
			"refusing auth.anonymous-tenant on non-loopback %s: listen on 127.0.0.1 or set auth.anonymous-allow-remote", c.ListenAddress)
	}
	check((c.TLS.CertFile == "") == (c.TLS.KeyFile == ""), "tls.cert-file and tls.key-file go together")
	check(c.TLS.ClientCAFile == "" || c.TLS.Enabled(), "tls.client-ca-file needs tls.cert-file and tls.key-file")
	return errors.Join(errs...)
}

// unauthenticatedExposure reports the insecure case Validate lets through
// only with Insecure, which deserves a loud warning.
func (c Config) unauthenticatedExposure() bool {
	return (c.Auth.Disabled || c.Auth.AnonymousTenant != "") && !isLoopback(c.ListenAddress)
}

// isLoopback reports whether addr binds loopback only. An empty host binds
// every interface; host names other than localhost are not trusted to
// resolve to loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultsOnly is a FlagSet that only stores the defaults.
type defaultsOnly struct{}

func (defaultsOnly) StringVar(p *string, _, v, _ string)                  { *p = v }
func (defaultsOnly) BoolVar(p *bool, _ string, v bool, _ string)          { *p = v }
func (defaultsOnly) IntVar(p *int, _ string, v int, _ string)             { *p = v }
func (defaultsOnly) Int64Var(p *int64, _ string, v int64, _ string)       { *p = v }
func (defaultsOnly) Float64Var(p *float64, _ string, v float64, _ string) { *p = v }
func (defaultsOnly) DurationVar(p *time.Duration, _ string, v time.Duration, _ string) {
	*p = v
}
func (defaultsOnly) Var(flag.Value, string, string) {}
