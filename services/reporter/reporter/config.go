package reporter

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config configures the reporter. Flag names carry no component prefix;
// the all-in-one adds "reporter.".
type Config struct {
	ListenAddress   string
	ShutdownTimeout time.Duration

	// ReportsDir holds one directory per tenant with report definitions
	// (<dir>/<tenant>/*.yaml).
	ReportsDir string
	// CheckInterval is how often schedules are checked and the definition
	// files re-read (0: definitions only on SIGHUP; schedules every second).
	CheckInterval time.Duration
	// Tenants, if set, limits the reporter to these tenants' reports:
	// replicas shard by tenant, so each report has one active instance.
	Tenants service.StringList
	// DataDir keeps the generated reports and the last run of each report.
	DataDir string

	Query QueryConfig
	Run   RunConfig
}

// QueryConfig configures the Prometheus query API the reports read.
type QueryConfig struct {
	URL string
	// TenantHeader carries the report's tenant on every query, as the
	// persister (and Mimir, Cortex) expect it.
	TenantHeader string
	// CredentialsFile maps tenants to HTTP Basic credentials.
	CredentialsFile string
	Timeout         time.Duration
}

// RunConfig configures report runs.
type RunConfig struct {
	// MaxAttempts bounds the tries of one run before it is given up (and
	// caught up at the next start).
	MaxAttempts int
	MinBackoff  time.Duration
	// MaxCatchUp bounds how many missed runs of one report are made up,
	// the newest ones.
	MaxCatchUp int
}

// RegisterFlags registers the reporter flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.ListenAddress, "listen-address", "127.0.0.1:9095", "Address of the report pages (/reports), the run API, /metrics, /-/healthy and /-/ready.")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "Longest wait for in-flight requests on shutdown.")
	f.StringVar(&c.ReportsDir, "reports.dir", "", "Directory of report definitions, one subdirectory per tenant: <dir>/<tenant>/*.yaml. Empty: no reports.")
	f.DurationVar(&c.CheckInterval, "reports.check-interval", 5*time.Second, "How often the report definitions are re-read (0: only on SIGHUP).")
	f.Var(&c.Tenants, "tenants", "Comma-separated tenants whose reports this reporter runs (shard replicas by tenant: one active instance per report); empty: all.")
	f.StringVar(&c.DataDir, "data-dir", "data/reporter", "Directory of the generated reports and of each report's last run.")
	f.StringVar(&c.Query.URL, "query.url", "http://127.0.0.1:9090", "Base URL of the Prometheus query API the reports read (the persister's, or Prometheus, Thanos, Mimir).")
	f.StringVar(&c.Query.TenantHeader, "query.tenant-header", "X-Scope-OrgID", "Request header naming the report's tenant on every query (empty: none).")
	f.StringVar(&c.Query.CredentialsFile, "query.credentials-file", "", "YAML file mapping tenants to HTTP Basic credentials for their queries ({<tenant>: {username, password | password_file}}), e.g. a probe of the tenant for the persister's API. Read at start. Empty: none.")
	f.DurationVar(&c.Query.Timeout, "query.timeout", 2*time.Minute, "Longest a run may take to query all its panels.")
	f.IntVar(&c.Run.MaxAttempts, "run.max-attempts", 4, "Tries of a failing run before it is given up until the next start.")
	f.DurationVar(&c.Run.MinBackoff, "run.min-backoff", 5*time.Second, "Wait before a failed run is retried; doubled each time.")
	f.IntVar(&c.Run.MaxCatchUp, "run.max-catch-up", 12, "Most runs of one report made at one check: after downtime, the newest missed ones; older ones are skipped and counted.")
}

// DefaultConfig returns the flag defaults, for tests and embedding callers.
func DefaultConfig() Config {
	fs := flag.NewFlagSet("reporter", flag.ContinueOnError)
	var c Config
	c.RegisterFlags(fs)
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
	check(c.CheckInterval >= 0, "reports.check-interval must be >= 0, got %s", c.CheckInterval)
	check(c.DataDir != "", "data-dir must be set")
	for _, t := range c.Tenants {
		check(contract.ValidTenant(t), "tenants: %q is not a valid tenant", t)
	}
	u, err := url.Parse(c.Query.URL)
	check(err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "", "query.url %q: want an http(s) URL", c.Query.URL)
	check(c.Query.TenantHeader == "" || httpguts.ValidHeaderFieldName(c.Query.TenantHeader), "query.tenant-header %q is not a valid header name", c.Query.TenantHeader)
	check(c.Query.Timeout > 0, "query.timeout must be > 0, got %s", c.Query.Timeout)
	check(c.Run.MaxAttempts > 0, "run.max-attempts must be > 0, got %d", c.Run.MaxAttempts)
	check(c.Run.MinBackoff > 0, "run.min-backoff must be > 0, got %s", c.Run.MinBackoff)
	check(c.Run.MaxCatchUp > 0, "run.max-catch-up must be > 0, got %d", c.Run.MaxCatchUp)
	return errors.Join(errs...)
}
