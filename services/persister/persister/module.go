package persister

import (
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/module"
)

// Module describes the persister for its own binary and the all-in-one.
func Module() *module.Module {
	cfg := &Config{}
	return &module.Module{
		Name: "persister",
		// The TSDB head is a large live heap: Go's default growth.
		GCPercent:     100,
		Config:        cfg,
		RegisterFlags: cfg.RegisterFlags,
		DataDirFlags:  map[string]string{"tsdb.path": "tsdb"},
		Resolve: func(p module.Process) {
			if cfg.API.AuthRegistry == "" {
				cfg.API.AuthRegistry = p.RegistryFile
			}
		},
		Validate: func() error { return cfg.Validate() },
		// Two consumers with their own groups: one flag cannot name both.
		ConsumerGroupFlagUnused: "set consumer-group and remote-write.consumer-group",
		ConsumerGroups: func() []string {
			if cfg.RemoteWrite.Enabled() {
				return []string{cfg.ConsumerGroup, cfg.RemoteWrite.ConsumerGroup}
			}
			return []string{cfg.ConsumerGroup}
		},
		New: func(d module.Deps) (module.Service, error) {
			sub, err := d.Bus.Subscriber(cfg.ConsumerGroup, "tsdb")
			if err != nil {
				return nil, err
			}
			opts := Options{
				Subscriber: sub,
				Publisher:  d.Bus.Publisher(),
				Registry:   d.Registry,
				Prober:     d.Prober,
				Logger:     d.Logger,
				Lag:        sub.LagOf(contract.TopicMetrics),
			}
			if cfg.RemoteWrite.Enabled() {
				if opts.RemoteWriteSubscriber, err = d.Bus.Subscriber(cfg.RemoteWrite.ConsumerGroup, "remote-write"); err != nil {
					return nil, err
				}
			}
			return New(*cfg, opts)
		},
	}
}
