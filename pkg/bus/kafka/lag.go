package kafka

import (
	"context"
	"errors"
	"fmt"

	kafka "github.com/segmentio/kafka-go"
)

// ErrNoConsumerGroup is returned by Lag for a subscriber without a group:
// it commits nothing, so it has no position to measure.
var ErrNoConsumerGroup = errors.New("kafka subscriber has no consumer group")

// Lag returns how many records of the topics the subscriber's consumer
// group has not committed yet, summed over topics and partitions: end offset minus
// committed offset, or minus the offset the group would start from where
// it committed nothing. It asks the brokers, so it also knows the lag of
// partitions that delivered nothing yet — which a count taken from
// consumed records cannot. Acknowledged records count until the next
// commit (Config.CommitInterval), so bound readiness checks generously.
func (s *Subscriber) Lag(ctx context.Context, topics ...string) (int64, error) {
	if s.cfg.ConsumerGroup == "" {
		return 0, ErrNoConsumerGroup
	}
	var total int64
	for _, topic := range topics {
		lag, err := s.topicLag(ctx, topic)
		if err != nil {
			return 0, err
		}
		total += lag
	}
	return total, nil
}

func (s *Subscriber) topicLag(ctx context.Context, topic string) (int64, error) {
	ids, err := s.admin.partitionIDs(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("lag of %s: %w", topic, err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	committed, err := s.committedOffsets(ctx, topic, ids)
	if err != nil {
		return 0, err
	}
	bounds, err := s.partitionBounds(ctx, topic, ids)
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, id := range ids {
		b := bounds[id]
		pos, ok := committed[id]
		switch {
		case ok && pos >= b.FirstOffset:
		case s.cfg.startOffset() == kafka.LastOffset:
			// Nothing committed (or before retention): the group starts
			// at the end, behind nothing.
			pos = b.LastOffset
		default:
			pos = b.FirstOffset
		}
		lag += max(b.LastOffset-pos, 0)
	}
	return lag, nil
}

// committedOffsets returns the group's committed offset per partition;
// partitions without a commit are missing.
func (s *Subscriber) committedOffsets(ctx context.Context, topic string, ids []int) (map[int]int64, error) {
	res, err := s.admin.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: s.cfg.ConsumerGroup,
		Topics:  map[string][]int{topic: ids},
	})
	if err == nil {
		err = res.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		// Some brokers (kfake) answer so for a group that never joined.
		return map[int]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s on %s: %w", s.cfg.ConsumerGroup, topic, err)
	}
	out := make(map[int]int64, len(ids))
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("committed offset of group %s on %s/%d: %w", s.cfg.ConsumerGroup, topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}

// partitionBounds returns the first and end offsets of each partition.
func (s *Subscriber) partitionBounds(ctx context.Context, topic string, ids []int) (map[int]kafka.PartitionOffsets, error) {
	reqs := make([]kafka.OffsetRequest, 0, 2*len(ids))
	for _, id := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	res, err := s.admin.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Addr:   s.admin.addr,
		Topics: map[string][]kafka.OffsetRequest{topic: reqs},
	})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	out := make(map[int]kafka.PartitionOffsets, len(ids))
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		out[p.Partition] = p
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return nil, fmt.Errorf("offsets of %s/%d: partition missing from the answer", topic, id)
		}
	}
	return out, nil
}

// LagOf returns Lag bound to topics, for readiness hooks.
func (s *Subscriber) LagOf(topics ...string) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) { return s.Lag(ctx, topics...) }
}
