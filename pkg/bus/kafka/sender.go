package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

// producer is the part of *kafka.Client the sender uses.
type producer interface {
	Produce(ctx context.Context, req *kafka.ProduceRequest) (*kafka.ProduceResponse, error)
	Metadata(ctx context.Context, req *kafka.MetadataRequest) (*kafka.MetadataResponse, error)
}

// sender batches records per partition only while the partition is busy:
// a record for an idle partition is produced at once, and the records that
// arrive while a produce request is in flight go out together in the next
// one. Light load thus pays no linger delay, and heavy load still gets large
// batches. One request per partition is in flight at a time, which keeps
// the records of a partition in order across retries.
type sender struct {
	client      producer
	balancer    kafka.Murmur2Balancer
	batchSize   int
	batchBytes  int64
	maxAttempts int
	backoffMin  time.Duration
	backoffMax  time.Duration
	// closeTimeout bounds Close.
	closeTimeout time.Duration
	// completion is called with the records of every produce request.
	completion func(topic string, records int)

	// ctx ends retries and requests in flight when Close gives up on them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per draining partition

	mu     sync.Mutex
	queues map[partitionKey]*partitionQueue
	parts  map[string][]int // topic → partition ids, dropped on errors
}

type partitionKey struct {
	topic     string
	partition int
}

type partitionQueue struct {
	key     partitionKey
	pending []pendingRecord
	busy    bool // a goroutine is producing its records
}

type pendingRecord struct {
	msg  *kafka.Message
	size int64
	call *sendCall
	idx  int
}

// sendCall is one WriteMessages waiting for its records.
type sendCall struct {
	ctx  context.Context
	errs kafka.WriteErrors
	left atomic.Int64
	done chan struct{}
}

// finish records the outcome of record idx; the last one wakes the caller.
// The atomic decrement orders every write to errs before the close.
func (c *sendCall) finish(idx int, err error) {
	c.errs[idx] = err
	if c.left.Add(-1) == 0 {
		close(c.done)
	}
}

func newSender(client producer, cfg Config, completion func(topic string, records int)) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	return &sender{
		client:       client,
		batchSize:    cfg.BatchSize,
		batchBytes:   cfg.BatchBytes,
		maxAttempts:  cfg.MaxAttempts,
		backoffMin:   100 * time.Millisecond,
		backoffMax:   time.Second,
		closeTimeout: cfg.WriteTimeout,
		completion:   completion,
		ctx:          ctx,
		cancel:       cancel,
		queues:       map[partitionKey]*partitionQueue{},
		parts:        map[string][]int{},
	}
}

// WriteMessages produces msgs and waits for their acknowledgement or for
// ctx. Records still queued when ctx ends are dropped; records already in
// a request may still be written. A partial failure returns
// kafka.WriteErrors with one entry per message.
func (s *sender) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	c := &sendCall{ctx: ctx, errs: make(kafka.WriteErrors, len(msgs)), done: make(chan struct{})}
	c.left.Store(int64(len(msgs)))
	ids := make(map[string][]int, 1)
	for _, m := range msgs {
		if _, ok := ids[m.Topic]; ok {
			continue
		}
		p, err := s.partitions(ctx, m.Topic)
		if err != nil {
			return err
		}
		ids[m.Topic] = p
	}
	now := time.Now()
	s.mu.Lock()
	for i := range msgs {
		m := &msgs[i]
		if m.Time.IsZero() {
			m.Time = now
		}
		size := recordSize(m)
		if size > s.batchBytes {
			c.finish(i, kafka.MessageTooLargeError{Message: *m})
			continue
		}
		key := partitionKey{topic: m.Topic, partition: s.balancer.Balance(*m, ids[m.Topic]...)}
		q := s.queues[key]
		if q == nil {
			q = &partitionQueue{key: key}
			s.queues[key] = q
		}
		q.pending = append(q.pending, pendingRecord{msg: m, size: size, call: c, idx: i})
		if !q.busy {
			q.busy = true
			s.wg.Add(1)
			go s.drain(q)
		}
	}
	s.mu.Unlock()

	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, err := range c.errs {
		if err != nil {
			return c.errs
		}
	}
	return nil
}

// recordSize is the record's size as kafka-go's Writer counts it against
// the batch bytes.
func recordSize(m *kafka.Message) int64 {
	n := int64(4+1+1+8) + 4 + int64(len(m.Key)) + 4 + int64(len(m.Value))
	for _, h := range m.Headers {
		n += int64(2+len(h.Key)) + int64(4+len(h.Value))
	}
	return n
}

// drain produces the queue's records until it is empty.
func (s *sender) drain(q *partitionQueue) {
	defer s.wg.Done()
	for {
		batch := s.next(q)
		if batch == nil {
			return
		}
		err := s.produce(q.key, batch)
		for _, r := range batch {
			r.call.finish(r.idx, err)
		}
	}
}

// next takes the next batch off q, dropping the records whose caller gave
// up, or marks q idle and returns nil.
func (s *sender) next(q *partitionQueue) []pendingRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	var batch []pendingRecord
	var bytes int64
	n := 0
	for ; n < len(q.pending) && len(batch) < s.batchSize; n++ {
		r := q.pending[n]
		if err := r.call.ctx.Err(); err != nil {
			r.call.finish(r.idx, err)
			continue
		}
		if len(batch) > 0 && bytes+r.size > s.batchBytes {
			break
		}
		batch = append(batch, r)
		bytes += r.size
	}
	clear(q.pending[:n])
	q.pending = q.pending[n:]
	if len(q.pending) == 0 {
		q.pending = nil
	}
	if len(batch) == 0 {
		q.busy = false
		return nil
	}
	return batch
}

// produce sends batch, retrying retriable errors with backoff.
func (s *sender) produce(key partitionKey, batch []pendingRecord) error {
	if s.completion != nil {
		s.completion(key.topic, len(batch))
	}
	records := make([]kafka.Record, len(batch))
	var err error
	for attempt := range s.maxAttempts {
		if attempt > 0 {
			if !s.sleep(attempt) {
				return fmt.Errorf("%w: %w", err, s.ctx.Err())
			}
		}
		// Record keys and values are readers, used up by each attempt.
		for i, r := range batch {
			records[i] = kafka.Record{Time: r.msg.Time, Key: kafka.NewBytes(r.msg.Key), Value: kafka.NewBytes(r.msg.Value), Headers: r.msg.Headers}
		}
		var res *kafka.ProduceResponse
		res, err = s.client.Produce(s.ctx, &kafka.ProduceRequest{
			Topic:        key.topic,
			Partition:    key.partition,
			RequiredAcks: kafka.RequireAll,
			Records:      kafka.NewRecordReader(records...),
		})
		if err == nil {
			err = res.Error
		}
		if err == nil {
			return nil
		}
		if !retriable(err) {
			return err
		}
		// The partition may have moved or the topic changed.
		s.mu.Lock()
		delete(s.parts, key.topic)
		s.mu.Unlock()
	}
	return err
}

func (s *sender) sleep(attempt int) bool {
	d := s.backoffMin << min(attempt-1, 10)
	t := time.NewTimer(min(d, s.backoffMax))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// retriable reports the errors kafka-go's Writer retries: temporary Kafka
// errors (NotLeaderForPartition, LeaderNotAvailable, ...) and dropped
// connections.
func retriable(err error) bool {
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// partitions returns the partition ids of topic, from the cache or the
// cluster metadata.
func (s *sender) partitions(ctx context.Context, topic string) ([]int, error) {
	s.mu.Lock()
	ids, ok := s.parts[topic]
	s.mu.Unlock()
	if ok {
		return ids, nil
	}
	res, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	for _, t := range res.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, t.Error)
		}
		if len(t.Partitions) == 0 {
			break
		}
		ids = make([]int, len(t.Partitions))
		for i := range ids {
			ids[i] = i
		}
		s.mu.Lock()
		s.parts[topic] = ids
		s.mu.Unlock()
		return ids, nil
	}
	return nil, fmt.Errorf("partitions of %s: %w", topic, kafka.UnknownTopicOrPartition)
}

// Close waits for the queued records up to the write timeout, then
// abandons them: with the broker down they would be retried for seconds.
func (s *sender) Close() error {
	timeout := s.closeTimeout
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-t.C:
		s.cancel()
		<-done
		return fmt.Errorf("%w after %s", ErrUnflushed, timeout)
	}
}
