package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
)

// Targets.
const (
	TargetAll     = "all"
	TargetMonitor = "monitor"
)

// allServices are the targets "all" stands for, in start order.
func allServices() []string { return []string{TargetMonitor} }

// Config is the whole tmaflow configuration.
type Config struct {
	Targets service.StringList
	// DataDir holds every component's state (the broker's logs under
	// kafka/) unless a component's own dir is set.
	DataDir string
	// DebugListenAddress serves /debug/pprof when set.
	DebugListenAddress string

	Log     service.LogConfig
	Broker  broker.Config
	Kafka   kafka.Config
	Monitor monitor.Config
}

// RegisterFlags registers every flag of tmaflow on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Targets = service.StringList{TargetAll}
	fs.Var(&c.Targets, "target", "Comma-separated services to run: all, or any of "+strings.Join(allServices(), ", ")+".")
	fs.StringVar(&c.DataDir, "data-dir", "data", "Directory of all state; the embedded broker keeps its logs in <data-dir>/kafka.")
	fs.StringVar(&c.DebugListenAddress, "debug.listen-address", "", "Serve Go's /debug/pprof profiles on this address (off when empty; never expose it publicly).")
	c.Log.RegisterFlags(fs)
	c.Broker.RegisterFlags(fs)
	c.Kafka.RegisterFlags(fs)
	c.Monitor.RegisterFlags(service.Prefixed{FS: fs, Prefix: "monitor."})
}

// Validate checks the configuration of the targets that run.
func (c *Config) Validate() error {
	targets, err := c.services()
	if err != nil {
		return err
	}
	var errs []error
	if c.EmbeddedBroker() {
		if err := c.Broker.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if slices.Contains(targets, TargetMonitor) {
		if err := c.Monitor.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("monitor: %w", err))
		}
	}
	return errors.Join(errs...)
}

// EmbeddedBroker reports whether tmaflow runs its own broker: when no
// external Kafka is configured.
func (c *Config) EmbeddedBroker() bool { return len(c.Kafka.Brokers) == 0 }

// BrokerDataDir is where the embedded broker keeps its logs.
func (c *Config) BrokerDataDir() string {
	if c.Broker.DataDir != "" {
		return c.Broker.DataDir
	}
	return filepath.Join(c.DataDir, "kafka")
}

// services expands the targets into the services to run, in start order.
func (c *Config) services() ([]string, error) {
	if len(c.Targets) == 0 {
		return nil, errors.New("target: empty")
	}
	want := map[string]bool{}
	for _, t := range c.Targets {
		switch {
		case t == TargetAll:
			for _, s := range allServices() {
				want[s] = true
			}
		case slices.Contains(allServices(), t):
			want[t] = true
		default:
			return nil, fmt.Errorf("target %q: want all or any of %s", t, strings.Join(allServices(), ", "))
		}
	}
	var out []string
	for _, s := range allServices() {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// ParseFlags builds a Config from command-line flags (and TMAFLOW_*
// environment variables) as the binary does, for tests and the benchmark.
func ParseFlags(args []string) (Config, error) {
	fs := flag.NewFlagSet("tmaflow", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg Config
	cfg.RegisterFlags(fs)
	if err := service.Parse(fs, args); err != nil {
		return Config{}, fmt.Errorf("tmaflow flags: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("tmaflow flags: unexpected arguments %q", fs.Args())
	}
	return cfg, nil
}
