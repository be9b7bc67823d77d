package module

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus"
)

// serviceBus is the bus as one service sees it: subscribers register
// their metrics on the service's registry and are closed with it.
type serviceBus struct {
	backend Backend
	logger  *slog.Logger
	reg     prometheus.Registerer
	subs    []bus.Subscriber
}

func (b *serviceBus) Publisher() message.Publisher   { return b.backend.Publisher() }
func (b *serviceBus) Ping(ctx context.Context) error { return b.backend.Ping(ctx) }
func (b *serviceBus) Reader() (bus.Reader, error)    { return b.backend.Reader(b.logger) }

func (b *serviceBus) Subscriber(group, consumer string) (bus.Subscriber, error) {
	logger, reg := b.logger, b.reg
	if consumer != "" {
		logger = logger.With("consumer", consumer)
		reg = prometheus.WrapRegistererWith(prometheus.Labels{"consumer": consumer}, reg)
	}
	s, err := b.backend.Subscriber(group, logger, reg)
	if err != nil {
		return nil, err
	}
	b.subs = append(b.subs, s)
	return s, nil
}

// close closes the subscribers (the router may have closed them already:
// closing again is a no-op).
func (b *serviceBus) close() error {
	var errs []error
	for _, s := range b.subs {
		if err := s.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close subscriber: %w", err))
		}
	}
	b.subs = nil
	return errors.Join(errs...)
}
