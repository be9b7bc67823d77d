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
	"github.com/tmaflow/tmaflow/services/labeler/labeler"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
	"github.com/tmaflow/tmaflow/services/persister/persister"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
)

// Targets.
const (
	TargetAll       = "all"
	TargetMonitor   = "monitor"
	TargetLabeler   = "labeler"
	TargetPersister = "persister"
	TargetRuler     = "ruler"
)

// allServices are the targets "all" stands for, in start order.
func allServices() []string {
	return []string{TargetMonitor, TargetLabeler, TargetPersister, TargetRuler}
}

// DefaultLabelerConsumerGroup is the labeler's consumer group of
// topic-monitor and topic-samples, as the labeler binary uses.
const DefaultLabelerConsumerGroup = "tmaflow-labeler"

// Config is the whole tmaflow configuration.
type Config struct {
	Targets service.StringList
	// DataDir holds every component's state (the broker's logs under
	// kafka/) unless a component's own dir is set.
	DataDir string
	// DebugListenAddress serves /debug/pprof when set.
	DebugListenAddress string
	// Registry is the one registry file of every service: the monitor's
	// and the query API's credentials, the labeler's names and labels.
	// A service's own flag overrides it; when it is empty the monitor's
	// -monitor.auth.registry stands in, so older command lines still
	// feed all three.
	Registry string
	// LabelerConsumerGroup is the labeler's consumer group.
	LabelerConsumerGroup string

	Log       service.LogConfig
	Runtime   service.RuntimeConfig
	Broker    broker.Config
	Kafka     kafka.Config
	Monitor   monitor.Config
	Labeler   labeler.Config
	Persister persister.Config
	Ruler     ruler.Config
}

// RegisterFlags registers every flag of tmaflow on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Targets = service.StringList{TargetAll}
	fs.Var(&c.Targets, "target", "Comma-separated services to run: all, or any of "+strings.Join(allServices(), ", ")+".")
	fs.StringVar(&c.DataDir, "data-dir", "data", "Directory of all state: the embedded broker's logs in <data-dir>/kafka, the persister's TSDB in <data-dir>/tsdb, the ruler's scratch files in <data-dir>/ruler.")
	fs.StringVar(&c.DebugListenAddress, "debug.listen-address", "", "Serve Go's /debug/pprof profiles on this address (off when empty; never expose it publicly).")
	fs.StringVar(&c.Registry, "registry", "", "Registry file of every service (probes, resources, descriptions, label_rules): the default of -monitor.auth.registry, -labeler.registry and -persister.api.auth.registry (when empty, -monitor.auth.registry is). Reloaded on SIGHUP.")
	fs.StringVar(&c.LabelerConsumerGroup, "labeler.consumer-group", DefaultLabelerConsumerGroup, "Kafka consumer group of the labeler (topic-monitor, topic-samples).")
	c.Log.RegisterFlags(fs)
	// The all-in-one's heap is small at the scale one process serves.
	c.Runtime.RegisterFlags(fs, 400)
	c.Broker.RegisterFlags(fs)
	c.Kafka.RegisterFlags(fs)
	c.Monitor.RegisterFlags(service.Prefixed{FS: fs, Prefix: "monitor."})
	c.Labeler.RegisterFlags(service.Prefixed{FS: fs, Prefix: "labeler."})
	c.Persister.RegisterFlags(service.Prefixed{FS: fs, Prefix: "persister."})
	c.Ruler.RegisterFlags(service.Prefixed{FS: fs, Prefix: "ruler."})
	// The TSDB lives in the data dir unless set: an empty default is
	// resolved against -data-dir after parsing.
	if f := fs.Lookup("persister.tsdb.path"); f != nil {
		c.Persister.TSDB.Path = ""
		f.DefValue = ""
		f.Usage += " Default <data-dir>/tsdb."
	}
}

// Validate checks the configuration of the targets that run.
func (c *Config) Validate() error {
	targets, err := c.services()
	if err != nil {
		return err
	}
	var errs []error
	if err := c.Runtime.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.EmbeddedBroker() {
		if err := c.Broker.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	r := c.resolved()
	if slices.Contains(targets, TargetMonitor) {
		if err := r.Monitor.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("monitor: %w", err))
		}
	}
	if slices.Contains(targets, TargetLabeler) {
		if err := r.Labeler.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("labeler: %w", err))
		}
		if r.LabelerConsumerGroup == "" {
			errs = append(errs, errors.New("labeler.consumer-group must not be empty"))
		}
	}
	if slices.Contains(targets, TargetPersister) {
		if err := r.Persister.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("persister: %w", err))
		}
		if slices.Contains(targets, TargetLabeler) && r.Persister.ConsumerGroup == r.LabelerConsumerGroup {
			errs = append(errs, fmt.Errorf("persister.consumer-group and labeler.consumer-group must differ (%q)", r.LabelerConsumerGroup))
		}
	}
	if slices.Contains(targets, TargetRuler) {
		if err := r.Ruler.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("ruler: %w", err))
		}
	}
	return errors.Join(errs...)
}

// resolved fills in what defaults to other flags: the shared registry
// file and the TSDB under the data dir.
func (c Config) resolved() Config {
	shared := c.Registry
	if shared == "" {
		shared = c.Monitor.Auth.Registry
	}
	if c.Monitor.Auth.Registry == "" && !c.Monitor.Auth.Disabled {
		c.Monitor.Auth.Registry = shared
	}
	if c.Labeler.Registry == "" {
		c.Labeler.Registry = shared
	}
	if c.Persister.API.AuthRegistry == "" {
		c.Persister.API.AuthRegistry = shared
	}
	if c.Persister.TSDB.Path == "" {
		c.Persister.TSDB.Path = filepath.Join(c.DataDir, "tsdb")
	}
	if c.Ruler.ScratchDir == "" {
		c.Ruler.ScratchDir = filepath.Join(c.DataDir, "ruler")
	}
	return c
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
