package nats

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoConsumerGroup is returned by Lag for a subscriber without a group:
// it acknowledges nothing, so it has no position to measure.
var ErrNoConsumerGroup = errors.New("nats subscriber has no consumer group")

// Lag returns how many messages of the topics the subscriber's consumer
// group has not acknowledged yet, summed over topics and partitions: the
// partition consumers' pending plus delivered-unacknowledged messages, or
// every message of a partition whose consumer does not exist yet (the
// group will start from the first). It asks the server, so it also knows
// the lag of partitions that delivered nothing yet.
func (s *Subscriber) Lag(ctx context.Context, topics ...string) (int64, error) {
	if s.cfg.ConsumerGroup == "" {
		return 0, ErrNoConsumerGroup
	}
	var total int64
	for _, topic := range topics {
		lag, err := s.topicLag(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("lag of %s: %w", topic, err)
		}
		total += lag
	}
	return total, nil
}

func (s *Subscriber) topicLag(ctx context.Context, topic string) (int64, error) {
	ts, err := s.streams.ensure(ctx, topic)
	if err != nil {
		return 0, err
	}
	var (
		lag    int64
		counts map[string]uint64 // messages per subject, read once when needed
	)
	for p := range ts.partitions {
		name := consumerName(s.cfg.ConsumerGroup, p)
		cons, err := s.js.Consumer(ctx, ts.stream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			if counts == nil {
				if counts, err = s.subjectCounts(ctx, ts); err != nil {
					return 0, err
				}
			}
			lag += int64(counts[ts.subject(p)])
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("consumer %s: %w", name, err)
		}
		info := cons.CachedInfo()
		lag += int64(info.NumPending) + int64(info.NumAckPending)
	}
	return lag, nil
}

// subjectCounts returns how many messages each partition subject holds.
func (s *Subscriber) subjectCounts(ctx context.Context, ts *topicStream) (map[string]uint64, error) {
	st, err := s.js.Stream(ctx, ts.stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", ts.stream, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("tmaflow."+ts.token+".>"))
	if err != nil {
		return nil, fmt.Errorf("stream %s subjects: %w", ts.stream, err)
	}
	return info.State.Subjects, nil
}

// LagOf returns Lag bound to topics, for readiness hooks.
func (s *Subscriber) LagOf(topics ...string) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) { return s.Lag(ctx, topics...) }
}
