package monitor

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
)

// send publishes records to topic in one Publish, bounded by the publish
// timeout, and returns nil only once the broker acknowledged every one.
func (s *Service) send(ctx context.Context, topic string, records []*message.Message) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	for _, m := range records {
		m.SetContext(ctx)
	}
	start := s.now()
	err := s.pub.Publish(topic, records...)
	s.metrics.publish.Observe(s.now().Sub(start).Seconds())
	return err
}
