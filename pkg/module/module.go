// Package module is how a tmaflow service describes itself once and is run
// from that description both as its own binary (Main) and inside the
// all-in-one (a Runner over a table of modules), in the manner of Loki's
// and Mimir's module manager, kept small: a module names itself, registers
// its flags (the runner adds the "<name>." prefix in the all-in-one),
// validates them, and builds a Service from the dependencies the runner
// gives it — the bus, a metrics registry, a prober and a logger.
package module

import (
	"context"
	"io"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Module describes a service. Build it with the service package's
// constructor (e.g. monitor.Module()), which owns the configuration the
// functions below close over; a Module is used by one runner once.
type Module struct {
	// Name is the service's name: its binary's, its target's in the
	// all-in-one (-target=name) and its flag prefix there ("name.").
	Name string
	// GCPercent is the default of -runtime.gc-percent in the service's own
	// binary (the all-in-one has one for the process).
	GCPercent int
	// Config points at the configuration the flags fill, for tests and
	// diagnostics.
	Config any

	// RegisterFlags registers the service's flags, unprefixed.
	RegisterFlags func(f service.FlagSet)
	// DataDirFlags are flags (unprefixed) whose default in the all-in-one
	// is a directory under -data-dir: flag name → subdirectory.
	DataDirFlags map[string]string
	// Resolve fills in, after parsing, what defaults to process-wide
	// settings. Nil: nothing does.
	Resolve func(p Process)
	// Validate checks the configuration after Resolve.
	Validate func() error
	// ConsumerGroups lists the consumer groups the service will consume
	// in, so a process running several services can refuse two that would
	// share one. Nil: none.
	ConsumerGroups func() []string
	// ConsumerGroupFlagUnused, when set, says why the bus's group flag
	// (-kafka.consumer-group, -nats.consumer-group)
	// cannot apply to the service: its binary refuses the flag with it.
	ConsumerGroupFlagUnused string
	// RegistryFile is the registry file the service was given on its own
	// flag: in the all-in-one, with -registry empty, the first service's
	// stands in for it. Nil: the service has none.
	RegistryFile func() string

	// New builds the service. It may bind listeners; nothing serves
	// before Execute.
	New func(d Deps) (Service, error)
	// ProcessMetrics makes the service's listener serve, in the
	// all-in-one, the process-wide metrics (the bus publisher's, the
	// embedded broker's) instead of a registry of its own.
	ProcessMetrics bool
	// Commands are subcommands of the service's own binary (and of the
	// all-in-one), by name.
	Commands map[string]Command
}

// Command is a subcommand: name is how it is called, for messages.
type Command func(name string, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// Process is what a process shares with its services' configurations.
type Process struct {
	// RegistryFile is the all-in-one's -registry: the default registry
	// file of every service ("" in a service's own binary).
	RegistryFile string
	// ConsumerGroup is the chosen bus's -kafka.consumer-group or
	// -nats.consumer-group of a service's own binary
	// ("" in the all-in-one, where each service names its groups).
	ConsumerGroup string
}

// Deps are what the runner gives a service.
type Deps struct {
	Bus Bus
	// Registry gets the service's metrics and is served on its /metrics.
	Registry *prometheus.Registry
	// Prober is the service's own; the process is ready while every
	// service's prober is.
	Prober *service.Prober
	Logger *slog.Logger
	// Admit says whether ingest may go on now: nil, or an error whose
	// *budget.Refusal gives the status to answer (429, 503). Never nil;
	// without budgets it always admits.
	Admit func() error
}

// Bus is the message bus as one service sees it. Subscribers and readers
// it makes are closed by the runner after the service.
type Bus interface {
	// Publisher is the process's; Publish returns nil only once the
	// broker acknowledged.
	Publisher() message.Publisher
	// Ping checks that the broker answers.
	Ping(ctx context.Context) error
	// Subscriber returns a subscriber in consumer group group. consumer,
	// when not empty, labels its metrics (consumer="…") so that two
	// subscribers of one service can be told apart.
	Subscriber(group, consumer string) (bus.Subscriber, error)
	// Reader returns a group-less reader of every partition.
	Reader() (bus.Reader, error)
}

// Service is a built service: a run-group actor, reloaded on SIGHUP.
// Services that hold resources beyond Execute also implement io.Closer,
// called once after Execute returned (or when the process fails to start).
type Service interface {
	Execute() error
	Interrupt(error)
	// Reload re-reads the service's files; on an error the previous
	// configuration stays.
	Reload() error
	// Addr is the address of the service's listener ("" without one).
	Addr() string
}
