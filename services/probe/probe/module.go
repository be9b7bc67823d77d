package probe

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/service"
)

func Module() *module.Module {
	return &module.Module{Name: "probe", RegisterFlags: func(f service.FlagSet) {}, Validate: func() error { return nil },
		New: func(d module.Deps) (module.Service, error) { return nil, nil }}
}
