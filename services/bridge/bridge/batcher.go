package bridge

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// publishers is how many batches may be at the bus at once: while one
// waits for its acknowledgement the next one fills.
const publishers = 4

// job is one MQTT message's records waiting for the bus.
type job struct {
	d    decoded
	done chan error
}

// batcher publishes the records of many clients' messages in shared
// batches: a client's read loop waits for its own message, so without
// sharing each client would cost one bus round trip per message.
type batcher struct {
	pub message.Publisher
	// merge puts the series of a batch's messages of one tenant into
	// shared records; their mqtt-topic header is then absent.
	merge    atomic.Bool
	in       chan *job
	maxBatch int
	timeout  time.Duration
	now      func() time.Time
	metrics  *metrics
}

func newBatcher(pub message.Publisher, maxBatch int, timeout time.Duration, now func() time.Time, m *metrics) *batcher {
	return &batcher{pub: pub, in: make(chan *job), maxBatch: maxBatch, timeout: timeout, now: now, metrics: m}
}

// run publishes batches until ctx ends.
func (b *batcher) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() { b.loop(ctx) })
	}
	wg.Wait()
}

func (b *batcher) loop(ctx context.Context) {
	batch := make([]*job, 0, b.maxBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-b.in:
			batch = append(batch[:0], j)
		}
	fill:
		for len(batch) < b.maxBatch {
			select {
			case j := <-b.in:
				batch = append(batch, j)
			default:
				break fill
			}
		}
		b.flush(ctx, batch)
		clear(batch)
	}
}

// flush publishes a batch, one Publish per bus topic (concurrently), and
// tells each job its topic's result.
func (b *batcher) flush(ctx context.Context, batch []*job) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	byTopic := map[string][]*message.Message{}
	merged := map[string]*sampleSet{} // by tenant
	for _, j := range batch {
		switch {
		case j.d.samples == nil:
			byTopic[j.d.topic] = append(byTopic[j.d.topic], j.d.records...)
		case b.merge.Load():
			s := merged[j.d.samples.tenant]
			if s == nil {
				s = &sampleSet{tenant: j.d.samples.tenant, mqttTopic: j.d.samples.mqttTopic, receivedAt: j.d.samples.receivedAt}
				merged[s.tenant] = s
			}
			if s.mqttTopic != j.d.samples.mqttTopic {
				s.mqttTopic = "" // mixed topics: no header
			}
			s.receivedAt = min(s.receivedAt, j.d.samples.receivedAt)
			s.series = append(s.series, j.d.samples.series...)
		default:
			byTopic[j.d.topic] = append(byTopic[j.d.topic], j.d.samples.build()...)
		}
	}
	for _, s := range merged {
		byTopic[contract.TopicSamples] = append(byTopic[contract.TopicSamples], s.build()...)
	}
	for _, msgs := range byTopic {
		for _, m := range msgs {
			m.SetContext(ctx)
		}
	}
	start := b.now()
	results := make(map[string]error, len(byTopic))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for topic, msgs := range byTopic {
		wg.Go(func() {
			err := b.pub.Publish(topic, msgs...)
			if err != nil {
				b.metrics.publishFails.Inc()
			}
			mu.Lock()
			results[topic] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	b.metrics.publish.Observe(b.now().Sub(start).Seconds())
	b.metrics.batchSize.Observe(float64(len(batch)))
	for _, j := range batch {
		j.done <- results[j.d.topic]
	}
}

// store hands d to a batch and waits for the bus, retrying a failed batch
// every retry until it is stored or ctx ends.
func (b *batcher) store(ctx context.Context, d decoded, retry time.Duration) error {
	j := &job{d: d, done: make(chan error, 1)}
	for {
		select {
		case b.in <- j:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := <-j.done
		if err == nil {
			return nil
		}
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
