package labeler

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config configures the labeler. Flag names carry no component prefix;
// embedding binaries add one with service.Prefixed.
type Config struct {
	// ListenAddress serves GET /registry, /metrics, /-/healthy and
	// /-/ready. Empty: no listener (embedders mount Handler).
	ListenAddress   string
	ShutdownTimeout time.Duration
	// Registry is the registry file: probes, resources, descriptions and
	// label rules.
	Registry string
	// RegistryCheckInterval is how often the registry file is checked for
	// changes (size, mtime, then content hash). 0: only on SIGHUP.
	RegistryCheckInterval time.Duration
	// Limits bound what one topic-samples record may hold.
	Limits samples.Limits
	// Ready bounds the consumer lag at which the labeler turns ready.
	Ready service.CatchUpConfig
	Bus   bus.RouterConfig
	Batch bus.BatchConfig
}

// RegisterFlags registers the labeler flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.ListenAddress, "listen-address", "127.0.0.1:8081", "Address of GET /registry, /metrics, /-/healthy and /-/ready (empty: none).")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "Longest wait for in-flight HTTP requests on shutdown.")
	f.StringVar(&c.Registry, "registry", "", "Registry file (probes, resources, descriptions, label_rules). Required. Reloaded on SIGHUP and when it changes.")
	f.DurationVar(&c.RegistryCheckInterval, "registry.check-interval", 5*time.Second, "How often the registry file is checked for changes (0: only on SIGHUP).")
	f.IntVar(&c.Limits.Series, "samples.max-series", 100000, "Most series in one topic-samples record; larger records go to the dead-letter topic (0: no limit).")
	f.IntVar(&c.Limits.LabelsPerSeries, "samples.max-labels", 256, "Most labels of one series in a topic-samples record (0: no limit).")
	f.IntVar(&c.Limits.SamplesPerSeries, "samples.max-samples-per-series", 0, "Most samples of one series in a topic-samples record (0: no limit).")
	f.IntVar(&c.Limits.StringLen, "samples.max-label-bytes", 64<<10, "Longest label name or value in a topic-samples record (0: no limit).")
	c.Ready.RegisterFlags(f, "the labeler's consumer group")
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
	check(c.Registry != "", "registry is required")
	errs = append(errs, c.Ready.Validate())
	check(c.ShutdownTimeout > 0, "shutdown-timeout must be > 0, got %s", c.ShutdownTimeout)
	check(c.RegistryCheckInterval >= 0, "registry.check-interval must be >= 0, got %s", c.RegistryCheckInterval)
	check(c.Limits.Series >= 0, "samples.max-series must be >= 0, got %d", c.Limits.Series)
	check(c.Limits.LabelsPerSeries >= 0, "samples.max-labels must be >= 0, got %d", c.Limits.LabelsPerSeries)
	check(c.Limits.SamplesPerSeries >= 0, "samples.max-samples-per-series must be >= 0, got %d", c.Limits.SamplesPerSeries)
	check(c.Limits.StringLen >= 0, "samples.max-label-bytes must be >= 0, got %d", c.Limits.StringLen)
	errs = append(errs, c.Bus.Validate(), c.Batch.Validate())
	return errors.Join(errs...)
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
