package monitor

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/registry"
)

// Module describes the monitor for its own binary and the all-in-one.
func Module() *module.Module {
	cfg := &Config{}
	return &module.Module{
		Name:          "monitor",
		GCPercent:     400,
		Config:        cfg,
		RegisterFlags: cfg.RegisterFlags,
		Resolve: func(p module.Process) {
			if cfg.Auth.Registry == "" && !cfg.Auth.Disabled {
				cfg.Auth.Registry = p.RegistryFile
			}
		},
		Validate:     func() error { return cfg.Validate() },
		RegistryFile: func() string { return cfg.Auth.Registry },
		New: func(d module.Deps) (module.Service, error) {
			return New(*cfg, Options{
				Publisher: d.Bus.Publisher(),
				Ping:      d.Bus.Ping,
				Registry:  d.Registry,
				Prober:    d.Prober,
				Logger:    d.Logger,
				Admit:     d.Admit,
			})
		},
		// The monitor's /metrics has always shown the process's producer.
		ProcessMetrics: true,
		Commands:       map[string]module.Command{"hash-secret": registry.HashSecretCommand},
	}
}
