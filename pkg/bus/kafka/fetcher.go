package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	fetchapi "github.com/segmentio/kafka-go/protocol/fetch"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// fetcher reads the partitions of a topic that one subscription consumes
// (a generation's assignment, or every partition without a group) with one
// fetch request per leader broker for all of them, as the Java consumer
// does, where kafka-go's Reader sends one request per partition. Under
// load a request then carries the records of many partitions, and client
// and broker handle a fraction of the requests. Fetched records wait in a
// queue per partition (a feed) for the partition's consumer; a partition
// is fetched again only while its queue has room.
type fetcher struct {
	topic  string
	client *kafka.Client // metadata, offsets and fetches, over the subscriber's transport
	cfg    fetchConfig
	logger *slog.Logger
	// failing is set from a failed request until one succeeds, so an
	// outage is logged once.
	failing atomic.Bool

	mu    sync.Mutex
	feeds map[int]*feed // by partition
}

// fetchConfig is what a fetcher takes from the subscriber's Config.
type fetchConfig struct {
	maxWait           time.Duration // an idle fetch's wait on the broker
	partitionMaxBytes int
	queueRecords      int           // records a feed holds before its partition is left out of fetches
	timeout           time.Duration // of a request, on top of maxWait
	backoff           time.Duration // after a failed request
	reset             int64         // kafka.FirstOffset or LastOffset: where an out-of-range partition starts again
}

// maxFetchBytes bounds a whole fetch request's response (Kafka's
// fetch.max.bytes default).
const maxFetchBytes = 50 << 20

func newFetchConfig(c Config) fetchConfig {
	return fetchConfig{
		maxWait:           c.FetchMaxWait,
		partitionMaxBytes: c.FetchMaxBytes,
		queueRecords:      max(100, 2*c.MaxInFlight),
		timeout:           c.WriteTimeout,
		backoff:           c.NackBackoff,
		reset:             c.startOffset(),
	}
}

// newFetcher returns a fetcher of the partitions in offsets, each read
// from its offset (kafka.FirstOffset and LastOffset are resolved). Run it
// with run; read a partition through feed.
func newFetcher(topic string, client *kafka.Client, cfg fetchConfig, logger *slog.Logger, offsets map[int]int64) *fetcher {
	f := &fetcher{topic: topic, client: client, cfg: cfg, logger: logger, feeds: make(map[int]*feed, len(offsets))}
	for p, off := range offsets {
		f.feeds[p] = &feed{f: f, partition: p, offset: off, ready: make(chan struct{}, 1)}
	}
	return f
}

// feed is one partition's fetched records, in offset order.
type feed struct {
	f         *fetcher
	partition int
	ready     chan struct{} // a record was queued (capacity 1)

	// Guarded by f.mu.
	offset int64           // the next offset to fetch; FirstOffset or LastOffset until resolved
	queue  []kafka.Message // fetched, not yet taken
	closed bool
	room   chan struct{} // wakes the loop fetching the partition when the queue has room (capacity 1)
}

// feed returns partition's feed, nil if the fetcher does not read it.
func (f *fetcher) feed(partition int) *feed { return f.feeds[partition] }

// FetchMessage returns the partition's next record, waiting for it until
// ctx ends.
func (fd *feed) FetchMessage(ctx context.Context) (kafka.Message, error) {
	for {
		fd.f.mu.Lock()
		if len(fd.queue) > 0 {
			m := fd.queue[0]
			fd.queue[0] = kafka.Message{}
			fd.queue = fd.queue[1:]
			if len(fd.queue) == 0 {
				fd.queue = nil // let the backing array go
			}
			if fd.room != nil && len(fd.queue) < fd.f.cfg.queueRecords {
				signal(fd.room)
			}
			fd.f.mu.Unlock()
			return m, nil
		}
		fd.f.mu.Unlock()
		select {
		case <-fd.ready:
		case <-ctx.Done():
			return kafka.Message{}, ctx.Err()
		}
	}
}

// Close stops fetching the partition and drops what is queued.
func (fd *feed) Close() error {
	fd.f.mu.Lock()
	fd.closed, fd.queue = true, nil
	fd.f.mu.Unlock()
	return nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run fetches until ctx ends: one loop per leader broker of the
// partitions, laid out again after any error a new layout may mend (a
// leader moved, a broker went away).
func (f *fetcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		layout, err := f.layout(ctx)
		if err == nil {
			lctx, cancel := context.WithCancel(ctx)
			errs := make(chan error, len(layout))
			var loops sync.WaitGroup
			for _, feeds := range layout {
				loops.Go(func() { errs <- f.loop(lctx, feeds) })
			}
			select {
			case <-ctx.Done():
			case err = <-errs:
			}
			cancel()
			loops.Wait()
		}
		if ctx.Err() != nil {
			return
		}
		if f.failing.CompareAndSwap(false, true) {
			f.logger.Warn("fetch", "topic", f.topic, "err", err)
		}
		service.Sleep(ctx, f.cfg.backoff)
	}
}

// layout groups the open feeds by the leader of their partition.
func (f *fetcher) layout(ctx context.Context) (map[int][]*feed, error) {
	mctx, cancel := context.WithTimeout(ctx, f.cfg.timeout)
	defer cancel()
	md, err := f.client.Metadata(mctx, &kafka.MetadataRequest{Topics: []string{f.topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", f.topic, err)
	}
	leaders := map[int]int{}
	for _, t := range md.Topics {
		if t.Name != f.topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", f.topic, t.Error)
		}
		for _, p := range t.Partitions {
			leaders[p.ID] = p.Leader.ID
		}
	}
	out := map[int][]*feed{}
	for id, fd := range f.feeds {
		leader, ok := leaders[id]
		if !ok {
			return nil, fmt.Errorf("metadata of %s: no partition %d", f.topic, id)
		}
		out[leader] = append(out[leader], fd)
	}
	return out, nil
}

// loop fetches feeds, whose partitions one broker leads, until ctx ends
// or an error calls for a new layout, which it returns.
func (f *fetcher) loop(ctx context.Context, feeds []*feed) error {
	room := make(chan struct{}, 1)
	f.mu.Lock()
	for _, fd := range feeds {
		fd.room = room
	}
	f.mu.Unlock()
	for ctx.Err() == nil {
		if err := f.resolve(ctx, feeds); err != nil {
			return err
		}
		want := f.wanted(feeds)
		if len(want) == 0 {
			select {
			case <-room:
			case <-ctx.Done():
			}
			continue
		}
		res, err := f.fetch(ctx, want)
		if err != nil {
			return err
		}
		if f.failing.CompareAndSwap(true, false) {
			f.logger.Info("fetch recovered", "topic", f.topic)
		}
		if err := f.deliver(want, res); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// resolve turns FirstOffset and LastOffset of feeds into offsets.
func (f *fetcher) resolve(ctx context.Context, feeds []*feed) error {
	var req []kafka.OffsetRequest
	f.mu.Lock()
	for _, fd := range feeds {
		if fd.offset < 0 && !fd.closed {
			req = append(req, kafka.OffsetRequest{Partition: fd.partition, Timestamp: fd.offset})
		}
	}
	f.mu.Unlock()
	if len(req) == 0 {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, f.cfg.timeout)
	defer cancel()
	res, err := f.client.ListOffsets(lctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{f.topic: req}})
	if err != nil {
		return fmt.Errorf("list offsets of %s: %w", f.topic, err)
	}
	got := map[int]kafka.PartitionOffsets{}
	for _, p := range res.Topics[f.topic] {
		if p.Error != nil {
			return fmt.Errorf("list offsets of %s/%d: %w", f.topic, p.Partition, p.Error)
		}
		got[p.Partition] = p
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fd := range feeds {
		p, ok := got[fd.partition]
		switch {
		case !ok || fd.offset >= 0:
		case fd.offset == kafka.FirstOffset:
			fd.offset = p.FirstOffset
		default:
			fd.offset = p.LastOffset
		}
	}
	return nil
}

// fetchPosition is a partition in a fetch request.
type fetchPosition struct {
	fd     *feed
	offset int64
}

// wanted returns the open feeds with room in their queue and their
// offsets.
func (f *fetcher) wanted(feeds []*feed) []fetchPosition {
	f.mu.Lock()
	defer f.mu.Unlock()
	var want []fetchPosition
	for _, fd := range feeds {
		if !fd.closed && fd.offset >= 0 && len(fd.queue) < f.cfg.queueRecords {
			want = append(want, fetchPosition{fd: fd, offset: fd.offset})
		}
	}
	return want
}

// fetch sends one fetch request for want to their leader.
func (f *fetcher) fetch(ctx context.Context, want []fetchPosition) (*fetchapi.Response, error) {
	parts := make([]fetchapi.RequestPartition, len(want))
	for i, w := range want {
		parts[i] = fetchapi.RequestPartition{
			Partition:          int32(w.fd.partition),
			CurrentLeaderEpoch: -1,
			FetchOffset:        w.offset,
			LogStartOffset:     -1,
			PartitionMaxBytes:  int32(f.cfg.partitionMaxBytes),
		}
	}
	rctx, cancel := context.WithTimeout(ctx, f.cfg.maxWait+f.cfg.timeout)
	defer cancel()
	m, err := f.client.Transport.RoundTrip(rctx, f.client.Addr, &fetchapi.Request{
		ReplicaID:      -1,
		MaxWaitTime:    int32(f.cfg.maxWait / time.Millisecond),
		MinBytes:       1,
		MaxBytes:       int32(min(len(want)*f.cfg.partitionMaxBytes, maxFetchBytes)),
		IsolationLevel: int8(kafka.ReadUncommitted),
		SessionID:      -1,
		SessionEpoch:   -1,
		Topics:         []fetchapi.RequestTopic{{Topic: f.topic, Partitions: parts}},
	})
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", f.topic, err)
	}
	res, ok := m.(*fetchapi.Response)
	if !ok {
		return nil, fmt.Errorf("fetch %s: unexpected response %T", f.topic, m)
	}
	if res.ErrorCode != 0 {
		return nil, fmt.Errorf("fetch %s: %w", f.topic, kafka.Error(res.ErrorCode))
	}
	return res, nil
}

// deliver queues the records of res on their feeds. A partition error
// other than an out-of-range offset (which starts the partition again at
// the reset offset) is returned, for a new layout.
func (f *fetcher) deliver(want []fetchPosition, res *fetchapi.Response) error {
	byPartition := make(map[int]int64, len(want))
	for _, w := range want {
		byPartition[w.fd.partition] = w.offset
	}
	var errs []error
	for _, t := range res.Topics {
		for i := range t.Partitions {
			p := &t.Partitions[i]
			fd, from := f.feeds[int(p.Partition)], byPartition[int(p.Partition)]
			if fd == nil || t.Topic != f.topic {
				closeRecords(p)
				continue
			}
			switch code := kafka.Error(p.ErrorCode); {
			case p.ErrorCode == 0:
				msgs, err := f.records(p, from)
				if err != nil {
					errs = append(errs, err)
				}
				f.queue(fd, from, msgs)
			case errors.Is(code, kafka.OffsetOutOfRange):
				closeRecords(p)
				f.logger.Warn("fetch offset out of range, starting again", "topic", f.topic, "partition", fd.partition, "offset", from, "reset", f.cfg.reset)
				f.mu.Lock()
				if fd.offset == from {
					fd.offset = f.cfg.reset
				}
				f.mu.Unlock()
			default:
				closeRecords(p)
				errs = append(errs, fmt.Errorf("fetch %s/%d: %w", f.topic, fd.partition, code))
			}
		}
	}
	return errors.Join(errs...)
}

// records reads the records of p from offset from on (a batch may start
// before it). A read error ends them: what was read before it is returned
// with it, and the next fetch continues after it.
func (f *fetcher) records(p *fetchapi.ResponsePartition, from int64) ([]kafka.Message, error) {
	defer closeRecords(p)
	rr := p.RecordSet.Records
	if rr == nil {
		return nil, nil
	}
	var msgs []kafka.Message
	for {
		r, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return msgs, fmt.Errorf("read records of %s/%d: %w", f.topic, p.Partition, err)
		}
		if r.Offset < from {
			continue
		}
		m, err := f.message(int(p.Partition), p.HighWatermark, r)
		if err != nil {
			return msgs, err
		}
		msgs = append(msgs, m)
	}
}

// message copies r out of the response's memory, and releases that
// memory: the response's pages go back to kafka-go's pool once the keys
// and values referring to them are closed.
func (f *fetcher) message(partition int, highWatermark int64, r *protocol.Record) (kafka.Message, error) {
	key, err := readBytes(r.Key)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("read key of %s/%d@%d: %w", f.topic, partition, r.Offset, err)
	}
	value, err := readBytes(r.Value)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("read value of %s/%d@%d: %w", f.topic, partition, r.Offset, err)
	}
	var headers []kafka.Header
	if len(r.Headers) > 0 {
		headers = make([]kafka.Header, len(r.Headers))
		for i, h := range r.Headers {
			headers[i] = kafka.Header{Key: h.Key, Value: append([]byte(nil), h.Value...)}
		}
	}
	return kafka.Message{
		Topic: f.topic, Partition: partition, Offset: r.Offset, HighWaterMark: highWatermark,
		Key: key, Value: value, Headers: headers, Time: r.Time,
	}, nil
}

// readBytes copies b and closes it.
func readBytes(b protocol.Bytes) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	out, err := protocol.ReadAll(b)
	return out, errors.Join(err, b.Close())
}

// queue appends msgs, fetched from offset from, to fd, unless fd was
// closed or moved to another offset meanwhile.
func (f *fetcher) queue(fd *feed, from int64, msgs []kafka.Message) {
	if len(msgs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fd.closed || fd.offset != from {
		return
	}
	fd.queue = append(fd.queue, msgs...)
	fd.offset = msgs[len(msgs)-1].Offset + 1
	signal(fd.ready)
}

func closeRecords(p *fetchapi.ResponsePartition) {
	if c, ok := p.RecordSet.Records.(io.Closer); ok {
		_ = c.Close() // the response's buffers go back to their pool; nothing to report
	}
}
