package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tmaflow/tmaflow/pkg/budget"
	"github.com/tmaflow/tmaflow/pkg/bus/backend"
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config is the whole tmaflow configuration: the process's own flags and
// those of every module of the table, each under its name's prefix.
type Config struct {
	Targets service.StringList
	// DataDir holds every component's state (the broker's logs under
	// kafka/) unless a component's own dir is set.
	DataDir string
	// DebugListenAddress serves /debug/pprof when set.
	DebugListenAddress string
	// Registry is the one registry file of every service: the monitor's
	// and the query API's credentials, the labeler's names and labels.
	// A service's own flag overrides it; when it is empty the first
	// service's own (-monitor.auth.registry) stands in, so older command
	// lines still feed every service.
	Registry string

	Log     service.LogConfig
	Runtime service.RuntimeConfig
	Budget  budget.Config
	Bus     backend.Config
	// Modules are every module of the table, configured by the flags
	// whether it runs or not.
	Modules []*module.Module

	// dataDirFlags default to a directory under DataDir when left empty.
	dataDirFlags []dataDirFlag
}

// DefaultMemoryLimitMiB is the all-in-one's default Go memory limit.
const DefaultMemoryLimitMiB = 2048

// DefaultGCHeadroomMiB is the all-in-one's default GC headroom: its heap
// under 16 MiB keeps 400%, one of 64 MiB and more is collected at Go's
// default 100%, so RSS stays about twice the live heap, not five times.
const DefaultGCHeadroomMiB = 64

// dataDirFlag is a module flag whose default is a subdirectory of DataDir.
type dataDirFlag struct {
	flag   *flag.Flag
	subdir string
}

// RegisterFlags registers every flag of tmaflow on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Modules = Modules()
	c.Targets = service.StringList{TargetAll}
	fs.Var(&c.Targets, "target", "Comma-separated services to run: all, or any of "+strings.Join(c.names(), ", ")+".")
	fs.StringVar(&c.DataDir, "data-dir", "data", "Directory of all state: the embedded broker's logs in <data-dir>/kafka, the persister's TSDB in <data-dir>/tsdb, the ruler's scratch files in <data-dir>/ruler.")
	fs.StringVar(&c.DebugListenAddress, "debug.listen-address", "", "Serve Go's /debug/pprof profiles on this address (off when empty; never expose it publicly).")
	fs.StringVar(&c.Registry, "registry", "", "Registry file of every service (probes, resources, descriptions, label_rules): the default of -monitor.auth.registry, -labeler.registry and -persister.api.auth.registry (when empty, -monitor.auth.registry is). Reloaded on SIGHUP.")
	c.Log.RegisterFlags(fs)
	// The all-in-one's heap is small at the scale one process serves; the
	// memory limit is the budget that refuses ingest before an OOM kill.
	c.Runtime.DefaultMemoryLimitMiB = DefaultMemoryLimitMiB
	c.Runtime.DefaultGCHeadroomMiB = DefaultGCHeadroomMiB
	c.Runtime.RegisterFlags(fs, 400)
	c.Budget.RegisterFlags(fs)
	c.Bus.RegisterEmbeddedFlags(fs)
	c.Bus.RegisterFlags(fs)
	for _, m := range c.Modules {
		m.RegisterFlags(service.Prefixed{FS: fs, Prefix: m.Name + "."})
		for name, subdir := range m.DataDirFlags {
			f := fs.Lookup(m.Name + "." + name)
			if f == nil {
				continue
			}
			// Empty by default: resolved against -data-dir after parsing.
			_ = f.Value.Set("")
			f.DefValue = ""
			f.Usage += " Default <data-dir>/" + subdir + "."
			c.dataDirFlags = append(c.dataDirFlags, dataDirFlag{flag: f, subdir: subdir})
		}
	}
}

// names are the modules' names, in start order.
func (c *Config) names() []string {
	out := make([]string, 0, len(c.Modules))
	for _, m := range c.Modules {
		out = append(out, m.Name)
	}
	return out
}

// resolve fills in what defaults to other flags: the shared registry
// file and the directories under the data dir. Filling in again changes
// nothing.
func (c *Config) resolve() {
	c.Bus.Broker.DataDir = c.BrokerDataDir()
	for _, d := range c.dataDirFlags {
		if d.flag.Value.String() == "" {
			_ = d.flag.Value.Set(filepath.Join(c.DataDir, d.subdir))
		}
	}
	p := module.Process{RegistryFile: c.Registry}
	if p.RegistryFile == "" {
		for _, m := range c.Modules {
			if m.RegistryFile != nil && m.RegistryFile() != "" {
				p.RegistryFile = m.RegistryFile()
				break
			}
		}
	}
	for _, m := range c.Modules {
		if m.Resolve != nil {
			m.Resolve(p)
		}
	}
}

// Validate checks the configuration of the targets that run.
func (c *Config) Validate() error {
	targets, err := c.targets()
	if err != nil {
		return err
	}
	c.resolve()
	var errs []error
	if err := c.Runtime.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Budget.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Bus.Validate(); err != nil {
		errs = append(errs, err)
	}
	groups := map[string]string{} // consumer group → module
	for _, m := range targets {
		if err := m.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.Name, err))
		}
		if m.ConsumerGroups == nil {
			continue
		}
		for _, g := range m.ConsumerGroups() {
			if other, ok := groups[g]; ok && other != m.Name {
				errs = append(errs, fmt.Errorf("%s.consumer-group and %s.consumer-group must differ (%q)", m.Name, other, g))
			}
			groups[g] = m.Name
		}
	}
	return errors.Join(errs...)
}

// EmbeddedBroker reports whether tmaflow runs its own broker: when no
// external Kafka is configured.
func (c *Config) EmbeddedBroker() bool { return c.Bus.Embedded() }

// BrokerDataDir is where the embedded broker keeps its logs.
func (c *Config) BrokerDataDir() string {
	if c.Bus.Broker.DataDir != "" {
		return c.Bus.Broker.DataDir
	}
	return filepath.Join(c.DataDir, "kafka")
}

// services expands the targets into the names of the services to run, in
// start order.
func (c *Config) services() ([]string, error) {
	targets, err := c.targets()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(targets))
	for _, m := range targets {
		out = append(out, m.Name)
	}
	return out, nil
}

// targets expands the targets into the modules to run, in start order.
func (c *Config) targets() ([]*module.Module, error) {
	if len(c.Targets) == 0 {
		return nil, errors.New("target: empty")
	}
	names := c.names()
	want := map[string]bool{}
	for _, t := range c.Targets {
		switch {
		case t == TargetAll:
			for _, n := range names {
				want[n] = true
			}
		case slices.Contains(names, t):
			want[t] = true
		default:
			return nil, fmt.Errorf("target %q: want all or any of %s", t, strings.Join(names, ", "))
		}
	}
	var out []*module.Module
	for _, m := range c.Modules {
		if want[m.Name] {
			out = append(out, m)
		}
	}
	return out, nil
}

// module returns the table's module of that name, nil if none.
func (c *Config) module(name string) *module.Module {
	for _, m := range c.Modules {
		if m.Name == name {
			return m
		}
	}
	return nil
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
