package reporter

import "github.com/tmaflow/tmaflow/pkg/module"

// Module describes the reporter for its own binary and the all-in-one.
func Module() *module.Module {
	cfg := &Config{}
	return &module.Module{
		Name:          "reporter",
		GCPercent:     100,
		Config:        cfg,
		RegisterFlags: cfg.RegisterFlags,
		DataDirFlags:  map[string]string{"data-dir": "reporter"},
		Validate:      func() error { return cfg.Validate() },
		// One active instance per report: shard reports by directory.
		ConsumerGroupFlagUnused: "the reporter consumes no topic",
		New: func(d module.Deps) (module.Service, error) {
			src, err := d.Bus.Reader()
			if err != nil {
				return nil, err
			}
			return New(*cfg, Options{Publisher: d.Bus.Publisher(), Alerts: TopicAlertHistory(src), Registry: d.Registry, Prober: d.Prober, Logger: d.Logger})
		},
	}
}
