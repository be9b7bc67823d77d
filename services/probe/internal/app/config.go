package app

import (
	"errors"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config is the probe's flags; the rest is in the configuration file.
type Config struct {
	ConfigFile    string
	ListenAddress string
	// QueueDir holds the queue's segments, the outputs' offsets and the
	// last applied remote configuration.
	QueueDir string
}

// RegisterFlags registers the flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.ConfigFile, "config.file", "probe.yaml", "Configuration file (collectors, outputs, queue caps, remote configuration); re-read on SIGHUP.")
	f.StringVar(&c.ListenAddress, "listen-address", "localhost:9464", "Address of /metrics, /-/healthy and /-/ready (empty: none).")
	f.StringVar(&c.QueueDir, "queue.dir", "probe-data", "Directory of the on-disk queue (segments, send offsets, the last remote configuration).")
}

// Validate checks the flags.
func (c Config) Validate() error {
	var errs []error
	if c.ConfigFile == "" {
		errs = append(errs, errors.New("config.file is required"))
	}
	if c.QueueDir == "" {
		errs = append(errs, errors.New("queue.dir is required"))
	}
	return errors.Join(errs...)
}
