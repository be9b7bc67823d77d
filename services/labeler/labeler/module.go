package labeler

import (
	"errors"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// DefaultConsumerGroup is the labeler's consumer group of topic-monitor
// and topic-samples.
const DefaultConsumerGroup = "tmaflow-labeler"

// Module describes the labeler for its own binary and the all-in-one.
func Module() *module.Module {
	cfg := &Config{}
	var group string
	return &module.Module{
		Name:      "labeler",
		GCPercent: 400,
		Config:    cfg,
		RegisterFlags: func(f service.FlagSet) {
			// Offsets are committed only in a group: without one a
			// restart would relabel everything from the start again.
			f.StringVar(&group, "consumer-group", DefaultConsumerGroup, "Consumer group of the labeler (topic-monitor, topic-samples); -kafka.consumer-group (-nats.consumer-group with -bus=nats), where set, wins.")
			cfg.RegisterFlags(f)
		},
		Resolve: func(p module.Process) {
			if cfg.Registry == "" {
				cfg.Registry = p.RegistryFile
			}
			if p.ConsumerGroup != "" {
				group = p.ConsumerGroup
			}
		},
		Validate: func() error {
			if group == "" {
				return errors.Join(cfg.Validate(), errors.New("consumer-group must not be empty"))
			}
			return cfg.Validate()
		},
		ConsumerGroups: func() []string { return []string{group} },
		New: func(d module.Deps) (module.Service, error) {
			sub, err := d.Bus.Subscriber(group, "")
			if err != nil {
				return nil, err
			}
			return New(*cfg, Options{
				Subscriber: sub,
				Publisher:  d.Bus.Publisher(),
				Registry:   d.Registry,
				Prober:     d.Prober,
				Logger:     d.Logger,
				Lag:        sub.LagOf(contract.TopicMonitor, contract.TopicSamples),
			})
		},
	}
}
