package app

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tmaflow/tmaflow/services/probe/internal/collect"
	"github.com/tmaflow/tmaflow/services/probe/internal/queue"
	"github.com/tmaflow/tmaflow/services/probe/internal/ship"
)

// FileConfig is the probe's configuration file (deploy/probe/probe.yaml),
// also what remote configuration delivers.
type FileConfig struct {
	// Version names the configuration (reported as a metric).
	Version string `yaml:"version"`
	// Labels are added to every series that lacks them.
	Labels     map[string]string `yaml:"labels"`
	Queue      QueueConfig       `yaml:"queue"`
	Collectors []CollectorConfig `yaml:"collectors"`
	Outputs    []OutputConfig    `yaml:"outputs"`
	// Remote fetches the configuration from the central side. Only the
	// local file's section counts: a remote configuration cannot change
	// where configurations come from or the key that signs them.
	Remote RemoteConfig `yaml:"remote_config"`
}

// QueueConfig caps the on-disk queue.
type QueueConfig struct {
	MaxMB        int64         `yaml:"max_mb"`
	MaxAge       time.Duration `yaml:"max_age"`
	Policy       queue.Policy  `yaml:"policy"`
	SegmentBytes int64         `yaml:"segment_bytes"`
	SyncInterval time.Duration `yaml:"sync_interval"`
}

// Collector types.
const (
	CollectorHost   = "host"
	CollectorScrape = "scrape"
	CollectorExec   = "exec"
	CollectorFile   = "file"
)

// CollectorConfig is one collector.
type CollectorConfig struct {
	Name     string        `yaml:"name"`
	Type     string        `yaml:"type"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	// host
	Parts    []string `yaml:"parts"`
	ProcPath string   `yaml:"proc_path"`
	SysPath  string   `yaml:"sys_path"`
	// scrape
	URL string         `yaml:"url"`
	TLS ship.TLSConfig `yaml:"tls"`
	// exec
	Command []string `yaml:"command"`
	// file
	Path string `yaml:"path"`
}

// Output types.
const (
	OutputTMA         = "tma"
	OutputRemoteWrite = "remote_write"
	OutputMQTT        = "mqtt"
)

// OutputConfig is one output.
type OutputConfig struct {
	Name string `yaml:"name"`
	Type string `yaml:"type"`
	// LiveFirst sends new data ahead of a backlog (default true); off
	// for receivers that refuse out-of-order samples.
	LiveFirst    *bool   `yaml:"live_first"`
	BatchSamples int     `yaml:"batch_samples"`
	BacklogRate  float64 `yaml:"backlog_rate"`
	// FlushInterval is the least time between two live requests
	// (default 1s; samples taken meanwhile share a request).
	FlushInterval time.Duration `yaml:"flush_interval"`

	TMA         *ship.TMAConfig         `yaml:"tma"`
	RemoteWrite *ship.RemoteWriteConfig `yaml:"remote_write"`
	MQTT        *ship.MQTTConfig        `yaml:"mqtt"`
}

// minInterval is the shortest sampling interval.
const minInterval = 100 * time.Millisecond

var (
	nameRe      = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	labelNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// ParseFileConfig decodes and validates a configuration; unknown fields
// are errors.
func ParseFileConfig(b []byte) (FileConfig, error) {
	var c FileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return FileConfig{}, fmt.Errorf("decode config: %w", err)
	}
	c.defaults()
	if err := c.Validate(); err != nil {
		return FileConfig{}, err
	}
	return c, nil
}

// ReadFileConfig reads the configuration file at path.
func ReadFileConfig(path string) (FileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return FileConfig{}, fmt.Errorf("read config %s: %w", path, err)
	}
	c, err := ParseFileConfig(b)
	if err != nil {
		return FileConfig{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

func (c *FileConfig) defaults() {
	if c.Queue.Policy == "" {
		c.Queue.Policy = queue.DropOldest
	}
	for i := range c.Collectors {
		cc := &c.Collectors[i]
		if cc.Interval == 0 {
			cc.Interval = 10 * time.Second
		}
		if cc.Timeout == 0 {
			cc.Timeout = min(cc.Interval, 10*time.Second)
		}
	}
	for i := range c.Outputs {
		if c.Outputs[i].LiveFirst == nil {
			t := true
			c.Outputs[i].LiveFirst = &t
		}
	}
}

// Validate checks the configuration and names every problem.
func (c FileConfig) Validate() error {
	var errs []error
	for k := range c.Labels {
		if !labelNameRe.MatchString(k) || strings.HasPrefix(k, "__") {
			errs = append(errs, fmt.Errorf("labels: %q is not a label name", k))
		}
	}
	if c.Queue.MaxMB < 0 || c.Queue.MaxAge < 0 || c.Queue.SegmentBytes < 0 || c.Queue.SyncInterval < 0 {
		errs = append(errs, errors.New("queue: sizes and durations must be ≥ 0"))
	}
	if p := c.Queue.Policy; p != queue.DropOldest && p != queue.StopSampling {
		errs = append(errs, fmt.Errorf("queue.policy %q: want %s or %s", p, queue.DropOldest, queue.StopSampling))
	}
	if len(c.Collectors) == 0 {
		errs = append(errs, errors.New("collectors: at least one is required"))
	}
	var names []string
	for i, cc := range c.Collectors {
		if err := cc.validate(); err != nil {
			errs = append(errs, fmt.Errorf("collectors[%d] %q: %w", i, cc.Name, err))
		}
		if slices.Contains(names, cc.Name) {
			errs = append(errs, fmt.Errorf("collectors[%d]: name %q used twice", i, cc.Name))
		}
		names = append(names, cc.Name)
	}
	if len(c.Outputs) == 0 {
		errs = append(errs, errors.New("outputs: at least one is required"))
	}
	names = nil
	for i, o := range c.Outputs {
		if err := o.validate(); err != nil {
			errs = append(errs, fmt.Errorf("outputs[%d] %q: %w", i, o.Name, err))
		}
		if slices.Contains(names, o.Name) {
			errs = append(errs, fmt.Errorf("outputs[%d]: name %q used twice", i, o.Name))
		}
		names = append(names, o.Name)
	}
	if err := c.Remote.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("remote_config: %w", err))
	}
	return errors.Join(errs...)
}

func (c CollectorConfig) validate() error {
	var errs []error
	if !nameRe.MatchString(c.Name) {
		errs = append(errs, errors.New("name: want letters, digits, '_', '.', '-'"))
	}
	if c.Interval < minInterval {
		errs = append(errs, fmt.Errorf("interval %s: at least %s", c.Interval, minInterval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, errors.New("timeout must be > 0"))
	}
	switch c.Type {
	case CollectorHost:
		for _, p := range c.Parts {
			if !slices.Contains(collect.HostParts(), p) {
				errs = append(errs, fmt.Errorf("parts: %q: want one of %s", p, strings.Join(collect.HostParts(), ", ")))
			}
		}
	case CollectorScrape:
		if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
			errs = append(errs, fmt.Errorf("url %q: want http:// or https://", c.URL))
		}
	case CollectorExec:
		if len(c.Command) == 0 {
			errs = append(errs, errors.New("command: the program and its arguments are required"))
		}
	case CollectorFile:
		if c.Path == "" {
			errs = append(errs, errors.New("path is required"))
		}
	default:
		errs = append(errs, fmt.Errorf("type %q: want host, scrape, exec or file", c.Type))
	}
	return errors.Join(errs...)
}

func (o OutputConfig) validate() error {
	var errs []error
	if !nameRe.MatchString(o.Name) {
		errs = append(errs, errors.New("name: want letters, digits, '_', '.', '-'"))
	}
	if o.BatchSamples < 0 || o.BacklogRate < 0 || o.FlushInterval < 0 {
		errs = append(errs, errors.New("batch_samples, backlog_rate and flush_interval must be ≥ 0"))
	}
	set := 0
	for _, p := range []bool{o.TMA != nil, o.RemoteWrite != nil, o.MQTT != nil} {
		if p {
			set++
		}
	}
	switch {
	case o.Type == OutputTMA && o.TMA != nil:
		errs = append(errs, o.TMA.Validate())
	case o.Type == OutputRemoteWrite && o.RemoteWrite != nil:
		errs = append(errs, o.RemoteWrite.Validate())
	case o.Type == OutputMQTT && o.MQTT != nil:
		errs = append(errs, o.MQTT.Validate())
	default:
		errs = append(errs, fmt.Errorf("type %q: want tma, remote_write or mqtt with its section of the same name", o.Type))
	}
	if set > 1 {
		errs = append(errs, errors.New("exactly one of tma, remote_write, mqtt"))
	}
	return errors.Join(errs...)
}
