package ruler

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"runtime"
	"time"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config configures the ruler. Flag names carry no component prefix;
// embedding binaries add one with service.Prefixed ("ruler.").
type Config struct {
	ListenAddress   string
	ShutdownTimeout time.Duration

	// RulesDir holds one directory per tenant with Prometheus rule files
	// (<rules-dir>/<tenant>/*.yml|*.yaml).
	RulesDir string
	// RulesCheckInterval is how often the rule files are checked for
	// changes (0: only on SIGHUP).
	RulesCheckInterval time.Duration
	// Tenants, if set, limits the ruler to these tenants (replicas shard
	// by tenant); others' series are not kept and their rules not loaded.
	Tenants service.StringList

	Window           time.Duration
	TruncateInterval time.Duration
	// ScratchDir holds the window's memory-mapped chunk files, removed on
	// close. Empty: the system's temporary directory.
	ScratchDir string

	Evaluation EvaluationConfig
	Alerting   AlertingConfig
}

// EvaluationConfig configures rule evaluation.
type EvaluationConfig struct {
	// DefaultInterval is the tick of groups without an interval.
	DefaultInterval time.Duration
	// Debounce is the least time between two data-triggered evaluations
	// of one group: a burst of batches costs one evaluation per group per
	// Debounce, the first at once.
	Debounce        time.Duration
	LookbackDelta   time.Duration
	QueryTimeout    time.Duration
	MaxSamples      int
	MaxFutureSkew   time.Duration
	RestoreMaxSteps int
	// Concurrency is the most groups evaluated at once; 0 means one less
	// than GOMAXPROCS, at least 1 (EvalSlots).
	Concurrency int
}

// EvalSlots is the number of groups evaluated at once. By default a core
// is left to ingest: with every core evaluating a burst of groups, the
// goroutines that carry new data (and Go's network poller, which an idle
// core checks) wait behind the queued evaluations, and so do the alerts
// that data would raise.
func (e EvaluationConfig) EvalSlots() int {
	if e.Concurrency > 0 {
		return e.Concurrency
	}
	return max(1, runtime.GOMAXPROCS(0)-1)
}

// AlertingConfig configures alert delivery.
type AlertingConfig struct {
	AlertmanagerURLs service.StringList
	// ResendDelay is how often a firing alert is sent again (Prometheus'
	// rules.alert.resend-delay).
	ResendDelay time.Duration
	Timeout     time.Duration
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	// QueueCapacity bounds the alerts waiting for one Alertmanager; the
	// oldest are dropped (and counted) beyond it.
	QueueCapacity int
	ExternalURL   string
}

// RegisterFlags registers the ruler flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.ListenAddress, "listen-address", "127.0.0.1:9094", "Address of /api/v1/rules, /api/v1/alerts, /metrics, /-/healthy and /-/ready.")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "Longest wait for in-flight requests and alert deliveries on shutdown.")
	f.StringVar(&c.RulesDir, "rules.dir", "", "Directory of rule files in the Prometheus format, one subdirectory per tenant: <dir>/<tenant>/*.yml. Empty: no rules.")
	f.DurationVar(&c.RulesCheckInterval, "rules.check-interval", 5*time.Second, "How often the rule files are checked for changes (0: only on SIGHUP).")
	f.Var(&c.Tenants, "tenants", "Comma-separated tenants this ruler evaluates (shard replicas by tenant); empty: all.")
	f.DurationVar(&c.Window, "window", time.Hour, "How much of topic-metrics is kept in memory for rules (and replayed at start); range selectors and offsets beyond it see nothing.")
	f.DurationVar(&c.TruncateInterval, "truncate-interval", time.Minute, "How often samples older than the window are dropped from memory.")
	f.StringVar(&c.ScratchDir, "scratch-dir", "", "Directory for the window's memory-mapped chunk files (a subdirectory, removed on exit); empty: the system's temporary directory. Must be writable.")

	f.DurationVar(&c.Evaluation.DefaultInterval, "evaluation.default-interval", time.Second, "Evaluation tick of groups without an interval (for, absent() and resolution); groups are also evaluated whenever their data arrives.")
	f.DurationVar(&c.Evaluation.Debounce, "evaluation.debounce", 2*time.Millisecond, "Least time between two data-triggered evaluations of one group; the first batch of a burst is evaluated at once.")
	f.DurationVar(&c.Evaluation.LookbackDelta, "evaluation.lookback-delta", 5*time.Minute, "How far back an instant vector selector looks for the latest sample.")
	f.DurationVar(&c.Evaluation.QueryTimeout, "evaluation.query-timeout", 10*time.Second, "Longest one rule query may run.")
	f.IntVar(&c.Evaluation.MaxSamples, "evaluation.max-samples", 5_000_000, "Most samples one rule query may hold in memory.")
	f.DurationVar(&c.Evaluation.MaxFutureSkew, "evaluation.max-future-skew", time.Second, "Samples up to this far ahead of the ruler's clock move a triggered evaluation to their time, so a probe with a fast clock is not missed.")
	f.IntVar(&c.Evaluation.Concurrency, "evaluation.concurrency", 0, "Most groups evaluated at once (0: one less than GOMAXPROCS, at least 1, so that ingest keeps a core through a burst of evaluations).")
	f.IntVar(&c.Evaluation.RestoreMaxSteps, "evaluation.restore-max-steps", 600, "Most evaluations per group over the replayed data at start to restore pending and firing alerts.")

	f.Var(&c.Alerting.AlertmanagerURLs, "alertmanager.url", "Comma-separated Alertmanager base URLs (alerts are POSTed to <url>/api/v2/alerts); empty: alerts go to topic-alerts only.")
	f.DurationVar(&c.Alerting.ResendDelay, "alertmanager.resend-delay", time.Minute, "How often firing alerts are sent to Alertmanager again.")
	f.DurationVar(&c.Alerting.Timeout, "alertmanager.timeout", 10*time.Second, "Timeout of one request to an Alertmanager.")
	f.DurationVar(&c.Alerting.MinBackoff, "alertmanager.min-backoff", 100*time.Millisecond, "First wait before a failed delivery is retried; doubled each time.")
	f.DurationVar(&c.Alerting.MaxBackoff, "alertmanager.max-backoff", 10*time.Second, "Longest wait between retries of a failed delivery.")
	f.IntVar(&c.Alerting.QueueCapacity, "alertmanager.queue-capacity", 10000, "Most alerts waiting for one Alertmanager; the oldest are dropped (counted) beyond it.")
	f.StringVar(&c.Alerting.ExternalURL, "external-url", "", "URL prefix of the generatorURL of alerts (a query UI, e.g. Grafana's explore or Prometheus' /graph); empty: none.")
}

// DefaultConfig returns the flag defaults, for tests and embedding callers.
func DefaultConfig() Config {
	fs := flag.NewFlagSet("ruler", flag.ContinueOnError)
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
	check(c.RulesCheckInterval >= 0, "rules.check-interval must be >= 0, got %s", c.RulesCheckInterval)
	for _, t := range c.Tenants {
		check(contract.ValidTenant(t), "tenants: %q is not a valid tenant", t)
	}
	check(c.Window > 0, "window must be > 0, got %s", c.Window)
	check(c.TruncateInterval > 0, "truncate-interval must be > 0, got %s", c.TruncateInterval)
	e := c.Evaluation
	check(e.DefaultInterval > 0, "evaluation.default-interval must be > 0, got %s", e.DefaultInterval)
	check(e.Debounce >= 0, "evaluation.debounce must be >= 0, got %s", e.Debounce)
	check(e.LookbackDelta > 0, "evaluation.lookback-delta must be > 0, got %s", e.LookbackDelta)
	check(e.QueryTimeout > 0, "evaluation.query-timeout must be > 0, got %s", e.QueryTimeout)
	check(e.MaxSamples > 0, "evaluation.max-samples must be > 0, got %d", e.MaxSamples)
	check(e.MaxFutureSkew >= 0, "evaluation.max-future-skew must be >= 0, got %s", e.MaxFutureSkew)
	check(e.Concurrency >= 0, "evaluation.concurrency must be >= 0, got %d", e.Concurrency)
	check(e.RestoreMaxSteps > 0, "evaluation.restore-max-steps must be > 0, got %d", e.RestoreMaxSteps)
	a := c.Alerting
	for _, u := range a.AlertmanagerURLs {
		pu, err := url.Parse(u)
		check(err == nil && (pu.Scheme == "http" || pu.Scheme == "https") && pu.Host != "", "alertmanager.url %q: want an http(s) URL", u)
	}
	check(a.ResendDelay > 0, "alertmanager.resend-delay must be > 0, got %s", a.ResendDelay)
	check(a.Timeout > 0, "alertmanager.timeout must be > 0, got %s", a.Timeout)
	check(a.MinBackoff > 0, "alertmanager.min-backoff must be > 0, got %s", a.MinBackoff)
	check(a.MaxBackoff >= a.MinBackoff, "alertmanager.max-backoff (%s) must be >= alertmanager.min-backoff (%s)", a.MaxBackoff, a.MinBackoff)
	check(a.QueueCapacity > 0, "alertmanager.queue-capacity must be > 0, got %d", a.QueueCapacity)
	if a.ExternalURL != "" {
		_, err := url.Parse(a.ExternalURL)
		check(err == nil, "external-url %q: %v", a.ExternalURL, err)
	}
	return errors.Join(errs...)
}
