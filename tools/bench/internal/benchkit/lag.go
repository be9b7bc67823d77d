package benchkit

import (
	"context"
	"errors"
	"fmt"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// Consumer is a consumer group reading a topic.
type Consumer struct {
	Name, Group, Topic string
}

// LagReader measures consumer lag from a Kafka broker: end offset minus
// committed offset, summed over partitions. Unlike a lag gauge updated
// when a record is acknowledged, it also sees a consumer that is stuck.
type LagReader struct {
	client *kafka.Client
}

// NewLagReader reads lags from the broker at broker (host:port).
func NewLagReader(broker string) *LagReader {
	return &LagReader{client: &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}}
}

// Lag returns how many records of c.Topic the group has not committed.
// The groups start at the earliest offset, so a partition without a
// commit lags by all its records.
func (l *LagReader) Lag(ctx context.Context, c Consumer) (int64, error) {
	meta, err := l.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.Topic}})
	if err != nil {
		return 0, fmt.Errorf("metadata of %s: %w", c.Topic, err)
	}
	var ids []int
	for _, t := range meta.Topics {
		if t.Name != c.Topic {
			continue
		}
		if t.Error != nil {
			return 0, fmt.Errorf("metadata of %s: %w", c.Topic, t.Error)
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
	ends, err := l.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.Topic: reqs}})
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", c.Topic, err)
	}
	fetched, err := l.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: c.Group, Topics: map[string][]int{c.Topic: ids}})
	if err == nil {
		err = fetched.Error
	}
	committed := map[int]int64{}
	switch {
	case errors.Is(err, kafka.GroupIdNotFound):
		// The group has not joined yet: nothing committed.
	case err != nil:
		return 0, fmt.Errorf("committed offsets of %s in %s: %w", c.Topic, c.Group, err)
	default:
		if err := collectCommitted(fetched.Topics[c.Topic], c, committed); err != nil {
			return 0, err
		}
	}
	var total int64
	for _, p := range ends.Topics[c.Topic] {
		if p.Error != nil {
			return 0, fmt.Errorf("end offset of %s/%d: %w", c.Topic, p.Partition, p.Error)
		}
		pos, ok := committed[p.Partition]
		if !ok || pos < p.FirstOffset {
			pos = p.FirstOffset
		}
		total += max(p.LastOffset-pos, 0)
	}
	return total, nil
}

func collectCommitted(ps []kafka.OffsetFetchPartition, c Consumer, into map[int]int64) error {
	for _, p := range ps {
		if p.Error != nil {
			return fmt.Errorf("committed offset of %s/%d in %s: %w", c.Topic, p.Partition, c.Group, p.Error)
		}
		into[p.Partition] = p.CommittedOffset
	}
	return nil
}

// Lags reads the lag of every consumer.
func (l *LagReader) Lags(ctx context.Context, cs []Consumer) ([]int64, error) {
	return lags(ctx, cs, l.Lag)
}

// Close releases nothing: the client holds no connection between
// requests.
func (l *LagReader) Close() error { return nil }

// Client is the reader's Kafka client (tests commit offsets with it).
func (l *LagReader) Client() *kafka.Client { return l.client }

// PipelineConsumers are the consumer groups of the all-in-one's defaults
// between ingest and the TSDB: the labeler and the persister.
var PipelineConsumers = []Consumer{
	{Name: "labeler", Group: "tmaflow-labeler", Topic: "topic-monitor"},
	{Name: "persister", Group: "tmaflow-persister", Topic: "topic-metrics"},
}

// Drain waits until every consumer committed everything, polling every
// 250ms; first is the total lag it found at first. It fails after
// timeout.
func Drain(ctx context.Context, l LagSource, cs []Consumer, timeout time.Duration) (first int64, err error) {
	start := time.Now()
	first = -1
	for {
		lags, err := l.Lags(ctx, cs)
		if err != nil {
			return first, err
		}
		var total int64
		for _, n := range lags {
			total += n
		}
		if first < 0 {
			first = total
		}
		if total == 0 {
			return first, nil
		}
		if time.Since(start) > timeout {
			return first, fmt.Errorf("consumers still %d records behind after %s", total, timeout)
		}
		if !service.Sleep(ctx, 250*time.Millisecond) {
			return first, ctx.Err()
		}
	}
}
