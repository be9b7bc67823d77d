package kafka

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	kafka "github.com/segmentio/kafka-go"
	produceapi "github.com/segmentio/kafka-go/protocol/produce"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
)

// fakeProducer records produce requests. Each request waits for a value on
// release when release is set, and answers with the next of errs: a Kafka
// error code for every partition, or any other error for the request.
// Partition i is led by broker i % brokers.
type fakeProducer struct {
	partitions int
	brokers    int
	release    chan struct{}
	sent       chan []string // values of each request, as it starts

	mu       sync.Mutex
	errs     []error
	metadata int
	leaders  []int32 // leader of each request's partitions
}

func (f *fakeProducer) Produce(ctx context.Context, req *produceapi.Request) (*produceapi.Response, error) {
	var values []string
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			for {
				r, err := p.RecordSet.Records.ReadRecord()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, err
				}
				v, err := io.ReadAll(r.Value)
				if err != nil {
					return nil, err
				}
				values = append(values, string(v))
			}
		}
	}
	if f.sent != nil {
		f.sent <- values
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	leader := int32(-1)
	res := &produceapi.Response{}
	var code int16
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		var kerr kafka.Error
		if !errors.As(err, &kerr) {
			return nil, err
		}
		code = int16(kerr)
	}
	for _, t := range req.Topics {
		rt := produceapi.ResponseTopic{Topic: t.Topic}
		for _, p := range t.Partitions {
			l := p.Partition % int32(max(f.brokers, 1))
			if leader >= 0 && l != leader {
				return nil, errors.New("mismatching leaders")
			}
			leader = l
			rt.Partitions = append(rt.Partitions, produceapi.ResponsePartition{Partition: p.Partition, ErrorCode: code})
		}
		res.Topics = append(res.Topics, rt)
	}
	f.leaders = append(f.leaders, leader)
	return res, nil
}

func (f *fakeProducer) Metadata(_ context.Context, req *kafka.MetadataRequest) (*kafka.MetadataResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.metadata++
	parts := make([]kafka.Partition, f.partitions)
	for i := range parts {
		parts[i] = kafka.Partition{Topic: req.Topics[0], ID: i, Leader: kafka.Broker{ID: i % max(f.brokers, 1)}}
	}
	return &kafka.MetadataResponse{Topics: []kafka.Topic{{Name: req.Topics[0], Partitions: parts}}}, nil
}

func (f *fakeProducer) metadataCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.metadata
}

func testSender(f *fakeProducer, edit func(*Config)) *sender {
	cfg := DefaultConfig()
	cfg.WriteTimeout = 200 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	s := newSender(f, cfg, nil)
	s.backoffMin, s.backoffMax = time.Millisecond, time.Millisecond
	return s
}

func keyed(value string) kafka.Message {
	return kafka.Message{Topic: "t", Key: []byte("k"), Value: []byte(value)}
}

func receiveBatch(t *testing.T, sent <-chan []string) []string {
	t.Helper()
	select {
	case v := <-sent:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("no produce request")
		return nil
	}
}

// A record for an idle partition goes out at once; the records published
// while its request is in flight share the next request, in order and at
// most batch-size of them.
func TestSenderBatchesOnlyWhileBusy(t *testing.T) {
	f := &fakeProducer{partitions: 4, release: make(chan struct{}), sent: make(chan []string, 10)}
	s := testSender(f, func(c *Config) { c.BatchSize = 3 })
	var wg sync.WaitGroup
	write := func(values ...string) {
		msgs := make([]kafka.Message, len(values))
		for i, v := range values {
			msgs[i] = keyed(v)
		}
		wg.Go(func() { require.NoError(t, s.WriteMessages(context.Background(), msgs...)) })
	}
	write("a")
	require.Equal(t, []string{"a"}, receiveBatch(t, f.sent), "not delayed")
	queued := func(n int) func() bool {
		return func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return len(s.queues[0].pending) == n
		}
	}
	write("b", "c")
	require.Eventually(t, queued(2), 5*time.Second, time.Millisecond)
	write("d", "e")
	require.Eventually(t, queued(4), 5*time.Second, time.Millisecond)
	for range 3 {
		f.release <- struct{}{}
	}
	require.Equal(t, []string{"b", "c", "d"}, receiveBatch(t, f.sent))
	require.Equal(t, []string{"e"}, receiveBatch(t, f.sent))
	wg.Wait()
	require.NoError(t, s.Close())
}

// The records for the partitions of one broker share one request; those
// of another broker go out beside it.
func TestSenderOneRequestPerBroker(t *testing.T) {
	f := &fakeProducer{partitions: 6, brokers: 2, release: make(chan struct{}), sent: make(chan []string, 10)}
	s := testSender(f, nil)
	first := make(chan error, 1)
	go func() { first <- s.WriteMessages(context.Background(), keyed("first")) }()
	require.Equal(t, []string{"first"}, receiveBatch(t, f.sent))

	var msgs []kafka.Message
	for i := range 30 {
		msgs = append(msgs, kafka.Message{Topic: "t", Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))})
	}
	rest := make(chan error, 1)
	go func() { rest <- s.WriteMessages(context.Background(), msgs...) }()
	other := receiveBatch(t, f.sent) // the idle broker's, at once
	f.release <- struct{}{}
	f.release <- struct{}{}
	require.NoError(t, <-first)
	busy := receiveBatch(t, f.sent) // the busy broker's, after "first"
	f.release <- struct{}{}
	require.NoError(t, <-rest)
	require.Len(t, append(other, busy...), 30)
	require.Empty(t, f.sent, "three requests in all: no retry after mismatching leaders")
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, f.leaders, 3)
	require.Subset(t, f.leaders, []int32{0, 1}, "each broker got a request")
	require.NoError(t, s.Close())
}

func TestSenderRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		errs     []error
		attempts int
		wantErr  error
		wantReqs int
	}{
		{name: "ok", wantReqs: 1, attempts: 3},
		{name: "leader moved", errs: []error{kafka.NotLeaderForPartition, kafka.LeaderNotAvailable}, attempts: 3, wantReqs: 3},
		{name: "attempts exhausted", errs: []error{kafka.NotLeaderForPartition, kafka.NotLeaderForPartition}, attempts: 2, wantErr: kafka.NotLeaderForPartition, wantReqs: 2},
		{name: "not retriable", errs: []error{kafka.MessageSizeTooLarge}, attempts: 3, wantErr: kafka.MessageSizeTooLarge, wantReqs: 1},
		{name: "connection dropped", errs: []error{io.ErrUnexpectedEOF}, attempts: 3, wantReqs: 2},
		{name: "connection never back", errs: []error{io.ErrUnexpectedEOF, io.ErrUnexpectedEOF}, attempts: 2, wantErr: io.ErrUnexpectedEOF, wantReqs: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeProducer{partitions: 2, errs: tc.errs, sent: make(chan []string, 10)}
			s := testSender(f, func(c *Config) { c.MaxAttempts = tc.attempts })
			err := s.WriteMessages(context.Background(), keyed("a"), keyed("b"))
			if tc.wantErr == nil {
				require.NoError(t, err)
			} else {
				var werrs kafka.WriteErrors
				require.ErrorAs(t, err, &werrs)
				require.Equal(t, 2, werrs.Count())
				require.ErrorIs(t, werrs[0], tc.wantErr)
			}
			require.Len(t, f.sent, tc.wantReqs)
			for range tc.wantReqs {
				require.Equal(t, []string{"a", "b"}, <-f.sent, "every attempt sends the whole batch")
			}
			require.NoError(t, s.Close())
		})
	}
}

func TestSenderRefreshesPartitionsAfterErrors(t *testing.T) {
	f := &fakeProducer{partitions: 2, errs: []error{kafka.NotLeaderForPartition}}
	s := testSender(f, nil)
	require.NoError(t, s.WriteMessages(context.Background(), keyed("a")))
	require.NoError(t, s.WriteMessages(context.Background(), keyed("b")))
	require.Equal(t, 2, f.metadataCalls(), "the failed attempt dropped the cached partitions")
	require.NoError(t, s.WriteMessages(context.Background(), keyed("c")))
	require.Equal(t, 2, f.metadataCalls(), "cached")
	require.NoError(t, s.Close())
}

// Keyed records land on murmur2(key) % partitions, as with kafka-go's
// Writer.
func TestSenderPartitioning(t *testing.T) {
	f := &fakeProducer{partitions: 5}
	s := testSender(f, nil)
	var mu sync.Mutex
	got := map[string]int{}
	s.completion = func(string, int) {}
	orig := s.cluster
	s.cluster = producerFunc{orig, func(req *produceapi.Request) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range req.Topics[0].Partitions {
			for {
				r, err := p.RecordSet.Records.ReadRecord()
				if errors.Is(err, io.EOF) {
					break
				}
				require.NoError(t, err)
				k, err := io.ReadAll(r.Key)
				require.NoError(t, err)
				got[string(k)] = int(p.Partition)
			}
		}
	}}
	var msgs []kafka.Message
	want := map[string]int{}
	for i := range 50 {
		m := kafka.Message{Topic: "t", Key: []byte("key-" + strconv.Itoa(i))}
		msgs = append(msgs, m)
		want[string(m.Key)] = (&kafka.Murmur2Balancer{}).Balance(m, 0, 1, 2, 3, 4)
	}
	require.NoError(t, s.WriteMessages(context.Background(), msgs...))
	require.Equal(t, want, got)
	require.NoError(t, s.Close())
}

// producerFunc inspects requests before passing them on.
type producerFunc struct {
	cluster
	inspect func(*produceapi.Request)
}

func (p producerFunc) Produce(ctx context.Context, req *produceapi.Request) (*produceapi.Response, error) {
	p.inspect(req)
	return p.cluster.Produce(ctx, req)
}

// A publish whose context ends returns at once, and its queued records are
// not sent; Close gives up on a stuck request after the write timeout.
func TestSenderDeadlineAndClose(t *testing.T) {
	f := &fakeProducer{partitions: 1, release: make(chan struct{}), sent: make(chan []string, 10)}
	s := testSender(f, func(c *Config) { c.MaxAttempts = 1 })
	s.timeout = time.Minute // the request outlives Close's wait
	stuck := make(chan error, 1)
	go func() { stuck <- s.WriteMessages(context.Background(), keyed("stuck")) }()
	require.Equal(t, []string{"stuck"}, receiveBatch(t, f.sent))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.WriteMessages(ctx, keyed("late")), context.DeadlineExceeded)

	start := time.Now()
	require.ErrorIs(t, s.Close(), ErrUnflushed)
	require.Less(t, time.Since(start), time.Second)
	require.Error(t, <-stuck)
	require.Empty(t, f.sent, "the expired record was dropped")
}

func TestSenderTooLarge(t *testing.T) {
	f := &fakeProducer{partitions: 1}
	s := testSender(f, func(c *Config) { c.BatchBytes = 100 })
	p := newPublisher(s, noIdle{}, newAdmin(Config{Brokers: []string{"unused:9092"}}, nil), time.Minute, time.Second, nil, nil)
	p.admin.known.Store("t", struct{}{})
	err := p.Publish("t", message.NewMessage("", make([]byte, 100)), message.NewMessage("", []byte("small")))
	require.ErrorIs(t, err, bus.ErrTooLarge)
	require.ErrorContains(t, err, "1 of 2 records failed")
	require.NoError(t, p.Close())
}
