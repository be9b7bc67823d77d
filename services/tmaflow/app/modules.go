package app

import (
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/services/bridge/bridge"
	"github.com/tmaflow/tmaflow/services/labeler/labeler"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
	"github.com/tmaflow/tmaflow/services/persister/persister"
	"github.com/tmaflow/tmaflow/services/reporter/reporter"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
)

// Modules is the table of every service the all-in-one can run, in start
// order: a new service is one more line here (and its package's Module).
func Modules() []*module.Module {
	return []*module.Module{
		monitor.Module(),
		bridge.Module(),
		labeler.Module(),
		persister.Module(),
		ruler.Module(),
		reporter.Module(),
	}
}

// Targets: TargetAll, or a module's name.
const (
	TargetAll       = "all"
	TargetMonitor   = "monitor"
	TargetBridge    = "bridge"
	TargetLabeler   = "labeler"
	TargetPersister = "persister"
	TargetRuler     = "ruler"
	TargetReporter  = "reporter"
)
