package persister

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config configures the persister. Flag names carry no component prefix;
// embedding binaries add one with service.Prefixed.
type Config struct {
	ListenAddress   string
	ShutdownTimeout time.Duration
	// ConsumerGroup is the group the caller gives Options.Subscriber (the
	// TSDB consumer); the service only reports it.
	ConsumerGroup string
	TSDB          TSDBConfig
	Query         QueryConfig
	API           APIConfig
	RemoteWrite   RemoteWriteConfig
	Ready         service.CatchUpConfig
	Bus           bus.RouterConfig
	Batch         bus.BatchConfig
}

// TSDBConfig configures the embedded Prometheus TSDB.
type TSDBConfig struct {
	Path             string
	Retention        time.Duration
	RetentionBytes   int64
	OutOfOrderWindow time.Duration
	WALCompression   bool
	// BlockDuration is the time range of the head before it is written
	// to a block: the head holds up to 1.5× it in memory.
	BlockDuration time.Duration
}

// QueryConfig configures the PromQL engine.
type QueryConfig struct {
	Timeout        time.Duration
	MaxSamples     int
	LookbackDelta  time.Duration
	MaxConcurrency int
}

// APIConfig selects how query API callers are mapped to tenants.
type APIConfig struct {
	// TenantHeader names the request header carrying the tenant (trusted:
	// put an authenticating proxy in front). Empty: headers are ignored.
	TenantHeader string
	// AuthRegistry is a registry file whose probe credentials (HTTP Basic)
	// authenticate callers as the probe's tenant.
	AuthRegistry string
	// DefaultTenant is the tenant of requests with neither header nor
	// credentials. Empty: such requests get 401.
	DefaultTenant string
}

// RemoteWriteConfig configures the optional remote_write forwarding.
type RemoteWriteConfig struct {
	URLs URLList
	// ConsumerGroup is the group the caller gives
	// Options.RemoteWriteSubscriber; it must differ from the TSDB's.
	ConsumerGroup     string
	Timeout           time.Duration
	MinBackoff        time.Duration
	MaxBackoff        time.Duration
	BasicAuthUsername string
	BasicAuthPassword string
	PasswordFile      string
	BearerToken       string
	BearerTokenFile   string
	// TenantHeader, when set, sends each batch's tenant in this header
	// (X-Scope-OrgID for Mimir, Cortex, Thanos Receive).
	TenantHeader string
}

// Enabled reports whether any endpoint is configured.
func (c RemoteWriteConfig) Enabled() bool { return len(c.URLs) > 0 }

// URLList is a list flag that appends on every use and also splits on
// commas, so a flag can be repeated or given one comma-separated value.
type URLList []string

func (l *URLList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

// Set appends the comma-separated values of s.
func (l *URLList) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// Default consumer groups.
const (
	DefaultConsumerGroup            = "tmaflow-persister"
	DefaultRemoteWriteConsumerGroup = "tmaflow-persister-remote-write"
)

// RegisterFlags registers the persister flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.ListenAddress, "listen-address", "127.0.0.1:9090", "Address of the Prometheus query API (/api/v1/...), /metrics, /-/healthy and /-/ready.")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "Longest wait for in-flight queries on shutdown.")
	f.StringVar(&c.ConsumerGroup, "consumer-group", DefaultConsumerGroup, "Consumer group (Kafka or NATS) of the TSDB consumer of topic-metrics.")

	f.StringVar(&c.TSDB.Path, "tsdb.path", "data/persister", "Directory of the TSDB (blocks and WAL).")
	f.DurationVar(&c.TSDB.Retention, "tsdb.retention", 15*24*time.Hour, "How long samples are kept.")
	f.Int64Var(&c.TSDB.RetentionBytes, "tsdb.retention-bytes", 0, "Most bytes of blocks kept, oldest dropped first (0: no limit).")
	f.DurationVar(&c.TSDB.OutOfOrderWindow, "tsdb.out-of-order-window", time.Hour, "How far behind the newest sample in the TSDB a sample older than its series' newest is still accepted (edge devices replay buffered data late); older ones go to topic-dlq. 0 disables out-of-order ingestion.")
	f.BoolVar(&c.TSDB.WALCompression, "tsdb.wal-compression", true, "Compress the WAL with snappy.")
	f.DurationVar(&c.TSDB.BlockDuration, "tsdb.block-duration", 2*time.Hour, "Time range of the in-memory head before it is compacted into a block on disk (Prometheus's --storage.tsdb.min-block-duration): the head holds up to 1.5 times it, so its memory is about samples/s × 1.5 × this × ~1.3 bytes plus the series. Shorter: less memory, more and smaller blocks. At least 1m.")

	f.DurationVar(&c.Query.Timeout, "query.timeout", 2*time.Minute, "Longest a query may run.")
	f.IntVar(&c.Query.MaxSamples, "query.max-samples", 50_000_000, "Most samples a query may hold in memory at once.")
	f.DurationVar(&c.Query.LookbackDelta, "query.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for the latest sample.")
	f.IntVar(&c.Query.MaxConcurrency, "query.max-concurrency", 20, "Queries evaluated at once; more wait.")

	f.StringVar(&c.API.TenantHeader, "api.tenant-header", "X-Scope-OrgID", "Request header naming the caller's tenant, trusted as is (empty: ignored).")
	f.StringVar(&c.API.AuthRegistry, "api.auth.registry", "", "Registry file whose probe credentials (HTTP Basic) authenticate API callers as their probe's tenant. Reloaded on SIGHUP.")
	f.StringVar(&c.API.DefaultTenant, "api.default-tenant", "", "Tenant of API requests with neither tenant header nor credentials (single-tenant setups); empty: such requests get 401.")

	f.Var(&c.RemoteWrite.URLs, "remote-write.url", "Prometheus remote-write endpoint to forward topic-metrics to (repeatable or comma-separated); none: off.")
	f.StringVar(&c.RemoteWrite.ConsumerGroup, "remote-write.consumer-group", DefaultRemoteWriteConsumerGroup, "Consumer group (Kafka or NATS) of the remote-write consumer of topic-metrics.")
	f.DurationVar(&c.RemoteWrite.Timeout, "remote-write.timeout", 30*time.Second, "Timeout of one remote-write request.")
	f.DurationVar(&c.RemoteWrite.MinBackoff, "remote-write.min-backoff", 100*time.Millisecond, "First wait before retrying a request answered 5xx or 429 (or failed); doubled each time.")
	f.DurationVar(&c.RemoteWrite.MaxBackoff, "remote-write.max-backoff", 30*time.Second, "Longest wait between retries (a longer Retry-After of the endpoint is honoured, up to 10m).")
	f.StringVar(&c.RemoteWrite.BasicAuthUsername, "remote-write.basic-auth.username", "", "HTTP Basic username for the remote-write endpoints.")
	f.StringVar(&c.RemoteWrite.BasicAuthPassword, "remote-write.basic-auth.password", "", "HTTP Basic password (prefer the environment or the password file).")
	f.StringVar(&c.RemoteWrite.PasswordFile, "remote-write.basic-auth.password-file", "", "File holding the HTTP Basic password, read at start.")
	f.StringVar(&c.RemoteWrite.BearerToken, "remote-write.bearer-token", "", "Bearer token for the remote-write endpoints (prefer the environment or the token file).")
	f.StringVar(&c.RemoteWrite.BearerTokenFile, "remote-write.bearer-token-file", "", "File holding the bearer token, read at start.")
	f.StringVar(&c.RemoteWrite.TenantHeader, "remote-write.tenant-header", "", "Header carrying each batch's tenant to the endpoint, e.g. X-Scope-OrgID (empty: none).")

	c.Ready.RegisterFlags(f, "the TSDB consumer")

	c.Bus.RegisterFlags(f)
	c.Batch.RegisterFlags(f)
}

// DefaultConfig returns the flag defaults, for tests and embedding callers.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(defaultsOnly{})
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	_, _, err := net.SplitHostPort(c.ListenAddress)
	check(err == nil, "listen-address %q: want host:port", c.ListenAddress)
	check(c.ShutdownTimeout > 0, "shutdown-timeout must be > 0, got %s", c.ShutdownTimeout)
	check(c.ConsumerGroup != "", "consumer-group must not be empty")

	check(c.TSDB.Path != "", "tsdb.path must not be empty")
	check(c.TSDB.Retention > 0, "tsdb.retention must be > 0, got %s", c.TSDB.Retention)
	check(c.TSDB.RetentionBytes >= 0, "tsdb.retention-bytes must be >= 0, got %d", c.TSDB.RetentionBytes)
	check(c.TSDB.OutOfOrderWindow >= 0, "tsdb.out-of-order-window must be >= 0, got %s", c.TSDB.OutOfOrderWindow)
	check(c.TSDB.BlockDuration >= time.Minute, "tsdb.block-duration must be >= 1m, got %s", c.TSDB.BlockDuration)

	check(c.Query.Timeout > 0, "query.timeout must be > 0, got %s", c.Query.Timeout)
	check(c.Query.MaxSamples > 0, "query.max-samples must be > 0, got %d", c.Query.MaxSamples)
	check(c.Query.LookbackDelta > 0, "query.lookback-delta must be > 0, got %s", c.Query.LookbackDelta)
	check(c.Query.MaxConcurrency > 0, "query.max-concurrency must be > 0, got %d", c.Query.MaxConcurrency)

	check(c.API.TenantHeader == "" || validHeaderName(c.API.TenantHeader), "api.tenant-header %q is not a valid header name", c.API.TenantHeader)
	check(c.API.DefaultTenant == "" || contract.ValidTenant(c.API.DefaultTenant), "api.default-tenant %q is not a valid tenant", c.API.DefaultTenant)

	rw := c.RemoteWrite
	for _, u := range rw.URLs {
		pu, err := url.Parse(u)
		check(err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != "", "remote-write.url %q: want an http(s) URL", u)
	}
	if rw.Enabled() {
		check(rw.ConsumerGroup != "", "remote-write.consumer-group must not be empty")
		check(rw.ConsumerGroup != c.ConsumerGroup, "remote-write.consumer-group must differ from consumer-group (%q): the two consumers commit separately", c.ConsumerGroup)
		check(rw.Timeout > 0, "remote-write.timeout must be > 0, got %s", rw.Timeout)
		check(rw.MinBackoff > 0, "remote-write.min-backoff must be > 0, got %s", rw.MinBackoff)
		check(rw.MaxBackoff >= rw.MinBackoff, "remote-write.max-backoff (%s) must be >= remote-write.min-backoff (%s)", rw.MaxBackoff, rw.MinBackoff)
	}
	basic := rw.BasicAuthUsername != "" || rw.BasicAuthPassword != "" || rw.PasswordFile != ""
	bearer := rw.BearerToken != "" || rw.BearerTokenFile != ""
	check(!(basic && bearer), "remote-write: basic auth and bearer token exclude each other")
	check(!basic || rw.BasicAuthUsername != "", "remote-write.basic-auth.username is required with a password")
	check(rw.BasicAuthPassword == "" || rw.PasswordFile == "", "remote-write.basic-auth.password and remote-write.basic-auth.password-file exclude each other")
	check(rw.BearerToken == "" || rw.BearerTokenFile == "", "remote-write.bearer-token and remote-write.bearer-token-file exclude each other")
	check(rw.TenantHeader == "" || validHeaderName(rw.TenantHeader), "remote-write.tenant-header %q is not a valid header name", rw.TenantHeader)

	errs = append(errs, c.Ready.Validate())
	errs = append(errs, c.Bus.Validate(), c.Batch.Validate())
	return errors.Join(errs...)
}

// validHeaderName reports whether s is an HTTP token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
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
