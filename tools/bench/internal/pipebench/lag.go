package pipebench

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// consumer is a consumer group reading a topic.
type consumer struct {
	name, group, topic string
}

// lagReader measures consumer lag from the broker: end offset minus
// committed offset, summed over partitions. Unlike a lag gauge updated
// when a record is acknowledged, it also sees a consumer that is stuck.
type lagReader struct {
	client *kafka.Client
}

func newLagReader(broker string) *lagReader {
	return &lagReader{client: &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}}
}

// lag returns how many records of c.topic the group has not committed.
// The groups start at the earliest offset, so a partition without a
// commit lags by all its records.
func (l *lagReader) lag(ctx context.Context, c consumer) (int64, error) {
	meta, err := l.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata of %s: %w", c.topic, err)
	}
	var ids []int
	for _, t := range meta.Topics {
		if t.Name != c.topic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("metadata of %s: %w", c.topic, t.Error)
		}
		for _, p := range t.Partitions {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(ids))
	for _, id := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	ends, err := l.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.topic: reqs}})
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", c.topic, err)
	}
	fetched, err := l.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: c.group, Topics: map[string][]int{c.topic: ids}})
	if err == nil {
		err = fetched.Error
	}
	committed := map[int]int64{}
	switch {
	case errors.Is(err, kafka.GroupIdNotFound):
		// The group has not joined yet: nothing committed.
	case err != nil:
		return 0, fmt.Errorf("committed offsets of %s in %s: %w", c.topic, c.group, err)
	default:
		if err := collectCommitted(fetched.Topics[c.topic], c, committed); err != nil {
			return 0, err
		}
	}
	var total int64
	for _, p := range ends.Topics[c.topic] {
		if p.Error != nil {
			return 0, fmt.Errorf("end offset of %s/%d: %w", c.topic, p.Partition, p.Error)
		}
		pos, ok := committed[p.Partition]
		if !ok || pos < p.FirstOffset {
			pos = p.FirstOffset
		}
		total += max(p.LastOffset-pos, 0)
	}
	return total, nil
}

func collectCommitted(ps []kafka.OffsetFetchPartition, c consumer, into map[int]int64) error {
	for _, p := range ps {
		if p.Error != nil {
			return fmt.Errorf("committed offset of %s/%d in %s: %w", c.topic, p.Partition, c.group, p.Error)
		}
		into[p.Partition] = p.CommittedOffset
	}
	return nil
}

// lags reads the lag of every consumer.
func (l *lagReader) lags(ctx context.Context, cs []consumer) ([]int64, error) {
	out := make([]int64, len(cs))
	var errs []error
	for i, c := range cs {
		n, err := l.lag(ctx, c)
		out[i] = n
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}
