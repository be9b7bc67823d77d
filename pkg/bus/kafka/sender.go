package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	produceapi "github.com/segmentio/kafka-go/protocol/produce"
)

// cluster is what the sender needs of the Kafka cluster: its layout and a
// way to send a produce request.
type cluster interface {
	Metadata(ctx context.Context, req *kafka.MetadataRequest) (*kafka.MetadataResponse, error)
	// Produce sends req, whose partitions all have the same leader.
	Produce(ctx context.Context, req *produceapi.Request) (*produceapi.Response, error)
}

// clientCluster is a cluster over a kafka-go client and its transport,
// which routes a produce request to the leader of its partitions.
type clientCluster struct {
	client *kafka.Client
	addr   net.Addr
}

func (c clientCluster) Metadata(ctx context.Context, req *kafka.MetadataRequest) (*kafka.MetadataResponse, error) {
	return c.client.Metadata(ctx, req)
}

func (c clientCluster) Produce(ctx context.Context, req *produceapi.Request) (*produceapi.Response, error) {
	m, err := c.client.Transport.RoundTrip(ctx, c.addr, req)
	if err != nil {
		return nil, err
	}
	res, ok := m.(*produceapi.Response)
	if !ok {
		return nil, fmt.Errorf("produce: unexpected response %T", m)
	}
	return res, nil
}

// sender batches records per broker only while the broker is busy: a
// record for an idle broker is produced at once, and the records that
// arrive while a produce request is in flight go out together in the next
// one — one request for all the partitions the broker leads, as the Java
// producer sends. Light load thus pays no linger delay, heavy load gets
// large batches and few requests. One request per broker is in flight at a
// time, and failed records go back to the front of the queue, which keeps
// the records of a partition in order across retries.
type sender struct {
	cluster     cluster
	balancer    kafka.Murmur2Balancer
	batchSize   int
	batchBytes  int64
	maxRequest  int64
	maxAttempts int
	// compression is the codec of every record set it produces.
	compression protocol.Attributes
	timeout     time.Duration
	backoffMin  time.Duration
	backoffMax  time.Duration
	// closeTimeout bounds Close.
	closeTimeout time.Duration
	// completion is called with the records of every partition batch.
	completion func(topic string, records int)

	// ctx ends retries and requests in flight when Close gives up on them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // one per draining broker

	mu      sync.Mutex
	queues  map[int]*brokerQueue    // leader id → queue
	layouts map[string]*topicLayout // dropped on errors
}

// topicLayout is a topic's partitions and their leaders.
type topicLayout struct {
	ids     []int
	leaders map[int]int // partition → broker id
}

// brokerQueue holds the records for the partitions one broker leads.
type brokerQueue struct {
	leader  int
	pending []pendingRecord
	busy    bool // a goroutine is producing its records
}

type partitionKey struct {
	topic     string
	partition int
}

type pendingRecord struct {
	msg      *kafka.Message
	key      partitionKey
	size     int64
	call     *sendCall
	idx      int
	attempts int
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

// minRequestBytes is the least a request may carry across partitions;
// brokers accept 100 MiB (socket.request.max.bytes).
const minRequestBytes = 16 << 20

func newSender(c cluster, cfg Config, completion func(topic string, records int)) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	return &sender{
		cluster:      c,
		batchSize:    cfg.BatchSize,
		batchBytes:   cfg.BatchBytes,
		maxRequest:   max(cfg.BatchBytes, minRequestBytes),
		maxAttempts:  cfg.MaxAttempts,
		compression:  protocol.Attributes(cfg.codec()),
		timeout:      cfg.WriteTimeout,
		backoffMin:   100 * time.Millisecond,
		backoffMax:   time.Second,
		closeTimeout: cfg.WriteTimeout,
		completion:   completion,
		ctx:          ctx,
		cancel:       cancel,
		queues:       map[int]*brokerQueue{},
		layouts:      map[string]*topicLayout{},
	}
}

// WriteMessages produces msgs and waits for their acknowledgement or for
// ctx. Records still queued when ctx ends are dropped; records already in
// a request may still be written. A partial failure returns
// kafka.WriteErrors with one entry per message.
func (s *sender) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	return s.enqueue(ctx, msgs...)()
}

// enqueue queues msgs behind the records queued before for their
// partitions, and returns the wait for their acknowledgement (see
// WriteMessages), to be called once.
func (s *sender) enqueue(ctx context.Context, msgs ...kafka.Message) (wait func() error) {
	if len(msgs) == 0 {
		return func() error { return nil }
	}
	c := &sendCall{ctx: ctx, errs: make(kafka.WriteErrors, len(msgs)), done: make(chan struct{})}
	c.left.Store(int64(len(msgs)))
	layouts := make(map[string]*topicLayout, 1)
	for _, m := range msgs {
		if _, ok := layouts[m.Topic]; ok {
			continue
		}
		l, err := s.layout(ctx, m.Topic)
		if err != nil {
			return func() error { return err }
		}
		layouts[m.Topic] = l
	}
	now := time.Now()
	records := make([]pendingRecord, 0, len(msgs))
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
		p := s.balancer.Balance(*m, layouts[m.Topic].ids...)
		records = append(records, pendingRecord{msg: m, key: partitionKey{m.Topic, p}, size: size, call: c, idx: i})
	}
	s.mu.Lock()
	for _, r := range records {
		s.enqueueLocked(layouts[r.key.topic], r)
	}
	s.mu.Unlock()
	return c.wait
}

// wait returns once every record of the call is finished, or ctx ended.
func (c *sendCall) wait() error {
	select {
	case <-c.done:
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
	for _, err := range c.errs {
		if err != nil {
			return c.errs
		}
	}
	return nil
}

// enqueueLocked appends r to the queue of its partition's leader and
// starts draining the queue if it is idle.
func (s *sender) enqueueLocked(l *topicLayout, r pendingRecord) {
	q := s.queueLocked(l.leaders[r.key.partition])
	q.pending = append(q.pending, r)
	s.startLocked(q)
}

func (s *sender) queueLocked(leader int) *brokerQueue {
	q := s.queues[leader]
	if q == nil {
		q = &brokerQueue{leader: leader}
		s.queues[leader] = q
	}
	return q
}

func (s *sender) startLocked(q *brokerQueue) {
	if !q.busy && len(q.pending) > 0 {
		q.busy = true
		s.wg.Add(1)
		go s.drain(q)
	}
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
func (s *sender) drain(q *brokerQueue) {
	defer s.wg.Done()
	for {
		batch := s.next(q)
		if batch == nil {
			return
		}
		retry := s.produce(batch)
		if len(retry) == 0 {
			continue
		}
		attempt := retry[0].attempts
		if !s.sleep(attempt) {
			for _, r := range retry {
				r.call.finish(r.idx, s.ctx.Err())
			}
			continue
		}
		s.requeue(q, retry)
	}
}

// next takes the next request's records off q — per partition at most
// batch-size records and batch-bytes, in order — dropping the records
// whose caller gave up, or marks q idle and returns nil.
func (s *sender) next(q *brokerQueue) []pendingRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	type fill struct {
		n     int
		bytes int64
		full  bool
	}
	fills := map[partitionKey]*fill{}
	var (
		batch []pendingRecord
		total int64
	)
	kept := q.pending[:0]
	for _, r := range q.pending {
		if err := r.call.ctx.Err(); err != nil {
			r.call.finish(r.idx, err)
			continue
		}
		f := fills[r.key]
		if f == nil {
			f = &fill{}
			fills[r.key] = f
		}
		// Once a record of a partition waits, the ones behind it wait too.
		f.full = f.full || f.n >= s.batchSize ||
			(f.n > 0 && f.bytes+r.size > s.batchBytes) ||
			(len(batch) > 0 && total+r.size > s.maxRequest)
		if f.full {
			kept = append(kept, r)
			continue
		}
		batch = append(batch, r)
		f.n++
		f.bytes += r.size
		total += r.size
	}
	clear(q.pending[len(kept):])
	q.pending = kept
	if len(q.pending) == 0 {
		q.pending = nil
	}
	if len(batch) == 0 {
		q.busy = false
		return nil
	}
	return batch
}

// requeue puts records that failed with a retriable error back in front
// of their leader's queue, the layout looked up again; while it cannot be
// (the cluster is unreachable), in front of q, their attempts bounding
// the retries.
func (s *sender) requeue(q *brokerQueue, records []pendingRecord) {
	layouts := map[string]*topicLayout{}
	for _, r := range records {
		t := r.key.topic
		if _, ok := layouts[t]; ok {
			continue
		}
		l, _ := s.layout(s.ctx, t)
		layouts[t] = l
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	byLeader := map[*brokerQueue][]pendingRecord{}
	for _, r := range records {
		leader := q
		if l := layouts[r.key.topic]; l != nil {
			if id, ok := l.leaders[r.key.partition]; ok {
				leader = s.queueLocked(id)
			}
		}
		byLeader[leader] = append(byLeader[leader], r)
	}
	for lq, rs := range byLeader {
		lq.pending = append(rs, lq.pending...)
		s.startLocked(lq)
	}
}

// produce sends batch in one request, finishes the records that were
// written or failed for good, and returns those to retry (their attempts
// counted).
func (s *sender) produce(batch []pendingRecord) (retry []pendingRecord) {
	req, order := s.request(batch)
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout)
	res, err := s.cluster.Produce(ctx, req)
	cancel()
	// A request-level failure (connection, routing) applies to all.
	results := map[partitionKey]error{}
	if err == nil {
		for _, t := range res.Topics {
			for _, p := range t.Partitions {
				var perr error
				if p.ErrorCode != 0 {
					perr = kafka.Error(p.ErrorCode)
				}
				results[partitionKey{t.Topic, int(p.Partition)}] = perr
			}
		}
	}
	dropLayouts := false
	for _, key := range order {
		perr, answered := results[key]
		switch {
		case err != nil:
			perr = err
		case !answered:
			perr = fmt.Errorf("produce to %s/%d: partition missing from the answer", key.topic, key.partition)
		}
		again := perr != nil && (err != nil || retriable(perr))
		for _, r := range batch {
			if r.key != key {
				continue
			}
			r.attempts++
			if again && r.attempts < s.maxAttempts && s.ctx.Err() == nil {
				retry = append(retry, r)
				continue
			}
			r.call.finish(r.idx, perr)
		}
		dropLayouts = dropLayouts || again
	}
	if dropLayouts {
		// A partition may have moved or the topic changed.
		s.mu.Lock()
		for _, key := range order {
			delete(s.layouts, key.topic)
		}
		s.mu.Unlock()
	}
	return retry
}

// request builds the produce request of batch, one record set per
// partition in the order of the batch, and returns the partitions in the
// order they first appear.
func (s *sender) request(batch []pendingRecord) (*produceapi.Request, []partitionKey) {
	records := map[partitionKey][]kafka.Record{}
	var order []partitionKey
	for _, r := range batch {
		if _, ok := records[r.key]; !ok {
			order = append(order, r.key)
		}
		records[r.key] = append(records[r.key], produceRecord(r.msg))
	}
	req := &produceapi.Request{Acks: int16(kafka.RequireAll), Timeout: int32(s.timeout.Milliseconds())}
	topicIdx := map[string]int{}
	for _, key := range order {
		i, ok := topicIdx[key.topic]
		if !ok {
			i = len(req.Topics)
			topicIdx[key.topic] = i
			req.Topics = append(req.Topics, produceapi.RequestTopic{Topic: key.topic})
		}
		rs := records[key]
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, produceapi.RequestPartition{
			Partition: int32(key.partition),
			RecordSet: s.recordSet(rs),
		})
		if s.completion != nil {
			s.completion(key.topic, len(rs))
		}
	}
	return req, order
}

// produceRecord is m as a record of a produce request. Its key and value
// are readers, used up by each attempt, so every attempt makes its own.
func produceRecord(m *kafka.Message) kafka.Record {
	return kafka.Record{Time: m.Time, Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value), Headers: m.Headers}
}

// recordSet is the record batch of one partition, compressed with the
// configured codec when it is encoded into the request.
func (s *sender) recordSet(records []kafka.Record) protocol.RecordSet {
	return protocol.RecordSet{Attributes: s.compression, Records: kafka.NewRecordReader(records...)}
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

// layout returns the partitions of topic and their leaders, from the
// cache or the cluster metadata.
func (s *sender) layout(ctx context.Context, topic string) (*topicLayout, error) {
	s.mu.Lock()
	l, ok := s.layouts[topic]
	s.mu.Unlock()
	if ok {
		return l, nil
	}
	res, err := s.cluster.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
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
		l = &topicLayout{ids: make([]int, len(t.Partitions)), leaders: make(map[int]int, len(t.Partitions))}
		for i, p := range t.Partitions {
			l.ids[i] = i
			l.leaders[p.ID] = p.Leader.ID
		}
		s.mu.Lock()
		s.layouts[topic] = l
		s.mu.Unlock()
		return l, nil
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
