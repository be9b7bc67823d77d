package bridge

import (
	"context"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/registry"
)

// Module describes the bridge for its own binary and the all-in-one.
func Module() *module.Module {
	cfg := &Config{}
	return &module.Module{
		Name:          "bridge",
		GCPercent:     200,
		Config:        cfg,
		RegisterFlags: cfg.RegisterFlags,
		// The embedded broker's sessions and retained messages live under
		// the all-in-one's -data-dir.
		DataDirFlags: map[string]string{"mqtt.data-dir": "mqtt"},
		Resolve: func(p module.Process) {
			if cfg.Registry == "" && !cfg.AuthDisabled {
				cfg.Registry = p.RegistryFile
			}
			if p.ConsumerGroup != "" {
				cfg.Alerts.ConsumerGroup = p.ConsumerGroup
			}
		},
		Validate:     func() error { return cfg.Validate() },
		RegistryFile: func() string { return cfg.Registry },
		ConsumerGroups: func() []string {
			if cfg.Alerts.Topic == "" {
				return nil
			}
			return []string{cfg.Alerts.ConsumerGroup}
		},
		New: func(d module.Deps) (module.Service, error) {
			var alerts bus.Subscriber
			var lag func(context.Context) (int64, error)
			if cfg.Alerts.Topic != "" {
				sub, err := d.Bus.Subscriber(cfg.Alerts.ConsumerGroup, "alerts")
				if err != nil {
					return nil, err
				}
				alerts, lag = sub, sub.LagOf(contract.TopicAlerts)
			}
			return New(*cfg, Options{
				Publisher: d.Bus.Publisher(),
				Alerts:    alerts,
				AlertsLag: lag,
				Ping:      d.Bus.Ping,
				Registry:  d.Registry,
				Prober:    d.Prober,
				Logger:    d.Logger,
				Admit:     d.Admit,
			})
		},
		Commands: map[string]module.Command{"hash-secret": registry.HashSecretCommand},
	}
}
