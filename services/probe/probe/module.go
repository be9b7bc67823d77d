// Package probe describes the edge probe as a tmaflow module. The probe
// runs apart from the all-in-one, as its own small binary
// (services/probe/main.go runs app.Main, which needs no bus); the module
// lets a process built from modules run it like any other service.
package probe

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/probe/internal/app"
)

// Module describes the probe. It uses no bus.
func Module() *module.Module {
	cfg := &app.Config{}
	cmds := map[string]module.Command{}
	for name, c := range app.Commands() {
		cmds[name] = module.Command(c)
	}
	return &module.Module{
		Name:          app.Name,
		GCPercent:     app.GCPercent,
		Config:        cfg,
		RegisterFlags: cfg.RegisterFlags,
		DataDirFlags:  map[string]string{"queue.dir": "probe"},
		// Not cfg.Validate: a method value would copy cfg before the
		// flags are parsed.
		Validate: func() error { return cfg.Validate() },
		New: func(d module.Deps) (module.Service, error) {
			return app.New(*cfg, app.Options{Registry: d.Registry, Prober: d.Prober, Logger: d.Logger})
		},
		Commands: cmds,
	}
}
