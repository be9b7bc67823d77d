package ruler

import (
	"errors"

	"github.com/tmaflow/tmaflow/pkg/module"
)

// Module describes the ruler for its own binary and the all-in-one.
func Module() *module.Module {
	cfg := &Config{}
	var kafkaGroup string
	return &module.Module{
		Name:          "ruler",
		GCPercent:     400,
		Config:        cfg,
		RegisterFlags: cfg.RegisterFlags,
		DataDirFlags:  map[string]string{"scratch-dir": "ruler"},
		Resolve:       func(p module.Process) { kafkaGroup = p.ConsumerGroup },
		Validate: func() error {
			if kafkaGroup != "" {
				return errors.Join(cfg.Validate(), errors.New("kafka.consumer-group is not used by the ruler: every replica reads all partitions of topic-metrics"))
			}
			return cfg.Validate()
		},
		New: func(d module.Deps) (module.Service, error) {
			NoLibraryTracing()
			src, err := d.Bus.Reader()
			if err != nil {
				return nil, err
			}
			return New(*cfg, Options{Publisher: d.Bus.Publisher(), Source: src, Registry: d.Registry, Prober: d.Prober, Logger: d.Logger})
		},
	}
}
