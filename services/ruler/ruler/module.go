package ruler

import "github.com/tmaflow/tmaflow/pkg/module"

// Module describes the ruler for its own binary and the all-in-one.
func Module() *module.Module {
	cfg := &Config{}
	return &module.Module{
		Name:          "ruler",
		GCPercent:     400,
		Config:        cfg,
		RegisterFlags: cfg.RegisterFlags,
		DataDirFlags:  map[string]string{"scratch-dir": "ruler"},
		Validate:      func() error { return cfg.Validate() },
		// Replicas shard by tenant, not by partition.
		ConsumerGroupFlagUnused: "every replica reads all partitions of topic-metrics",
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
