package kafka_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	kgo "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*kafka.Config)
		wantErr string
	}{
		{name: "defaults", edit: func(*kafka.Config) {}},
		{name: "brokers", edit: func(c *kafka.Config) { c.Brokers = []string{"a:9092", "b:9092"} }},
		{name: "broker without port", edit: func(c *kafka.Config) { c.Brokers = []string{"a"} }, wantErr: `kafka.brokers: "a" is not host:port`},
		{name: "no partitions", edit: func(c *kafka.Config) { c.Partitions = 0 }, wantErr: "kafka.partitions must be > 0"},
		{name: "broker default replication", edit: func(c *kafka.Config) { c.ReplicationFactor = -1 }},
		{name: "bad replication", edit: func(c *kafka.Config) { c.ReplicationFactor = 0 }, wantErr: "kafka.replication-factor"},
		{name: "bad start offset", edit: func(c *kafka.Config) { c.StartOffset = "oldest" }, wantErr: "kafka.start-offset"},
		{name: "commit after every ack", edit: func(c *kafka.Config) { c.CommitInterval = 0 }},
		{name: "session shorter than heartbeats", edit: func(c *kafka.Config) { c.SessionTimeout = 2 * c.HeartbeatInterval }, wantErr: "kafka.session-timeout"},
		{name: "no batch timeout", edit: func(c *kafka.Config) { c.BatchTimeout = 0 }},
		{name: "negative batch timeout", edit: func(c *kafka.Config) { c.BatchTimeout = -time.Millisecond }, wantErr: "kafka.batch-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := kafka.DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	require.ErrorIs(t, kafka.DefaultConfig().RequireBrokers(), kafka.ErrNoBrokers)
	_, err := kafka.NewPublisher(kafka.DefaultConfig(), nil, nil)
	require.ErrorIs(t, err, kafka.ErrNoBrokers)
}

// readAll reads the n records of topic with a plain kafka-go consumer, as a
// non-Watermill client would.
func readAll(t *testing.T, brokers []string, topic string, n int) []kgo.Message {
	t.Helper()
	conn, err := kgo.Dial("tcp", brokers[0])
	require.NoError(t, err)
	parts, err := conn.ReadPartitions(topic)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	var out []kgo.Message
	for _, p := range parts {
		leader, err := kgo.DialLeader(context.Background(), "tcp", brokers[0], topic, p.ID)
		require.NoError(t, err)
		first, last, err := leader.ReadOffsets()
		require.NoError(t, err)
		require.NoError(t, leader.Close())
		if first == last {
			continue
		}
		// A short MaxWait: Close waits for the pending fetch.
		r := kgo.NewReader(kgo.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p.ID, MaxWait: 50 * time.Millisecond})
		for range last - first {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			m, err := r.ReadMessage(ctx)
			cancel()
			require.NoError(t, err)
			out = append(out, m)
		}
		require.NoError(t, r.Close())
	}
	require.Len(t, out, n)
	return out
}

func TestRecordMapping(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers)
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()

	// The monitor's record: binary key, contract headers, no UUID header.
	key := contract.ResourceKey(258)
	tma := message.NewMessage("", []byte(`{"probeId":1}`))
	bus.SetKey(tma, key)
	tma.Metadata.Set(contract.HeaderTenant, "acme")
	tma.Metadata.Set(contract.HeaderContentType, contract.ContentTypeTMA)
	// A Watermill message: UUID kept, no key.
	wm := message.NewMessage("uuid-1", []byte("x"))
	wm.Metadata.Set("k", "v")
	require.NoError(t, pub.Publish("mapping", tma, wm))

	recs := readAll(t, brokers, "mapping", 2)
	byValue := map[string]kgo.Message{}
	for _, r := range recs {
		byValue[string(r.Value)] = r
	}
	headers := func(r kgo.Message) map[string]string {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		return h
	}
	r := byValue[`{"probeId":1}`]
	require.Equal(t, key, r.Key)
	require.Equal(t, map[string]string{"tenant": "acme", "content-type": "application/json"}, headers(r))
	r = byValue["x"]
	require.Nil(t, r.Key)
	require.Equal(t, map[string]string{kafka.HeaderUUID: "uuid-1", "k": "v"}, headers(r))

	// And back through the subscriber.
	cfg.ConsumerGroup = "mapping"
	sub, err := kafka.NewSubscriber(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, sub.Close()) }()
	msgs, err := sub.Subscribe(context.Background(), "mapping")
	require.NoError(t, err)
	got := map[string]*message.Message{}
	for range 2 {
		m := receive(t, msgs)
		got[string(m.Payload)] = m
		m.Ack()
	}
	m := got[`{"probeId":1}`]
	require.Equal(t, key, bus.Key(m))
	require.Equal(t, "acme", m.Metadata.Get(contract.HeaderTenant))
	rec, ok := kafka.RecordFromContext(m.Context())
	require.True(t, ok)
	require.Equal(t, fmt.Sprintf("mapping-%d-%d", rec.Partition, rec.Offset), m.UUID, "records without UUID header get topic-partition-offset")
	m = got["x"]
	require.Equal(t, "uuid-1", m.UUID)
	require.Nil(t, bus.Key(m))
	require.Equal(t, message.Metadata{"k": "v"}, m.Metadata)
}

func receive(t *testing.T, msgs <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-msgs:
		require.True(t, ok, "channel closed")
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
		return nil
	}
}

// Keyed records must land where Kafka's Java client puts them:
// toPositive(murmur2(key)) % partitions, with murmur2 test vectors from
// Kafka's UtilsTest.
func TestJavaCompatiblePartitioning(t *testing.T) {
	for _, linger := range []time.Duration{0, time.Millisecond} {
		t.Run("batch-timeout="+linger.String(), func(t *testing.T) { testJavaCompatiblePartitioning(t, linger) })
	}
}

func testJavaCompatiblePartitioning(t *testing.T, linger time.Duration) {
	brokers := newCluster(t)
	cfg := testConfig(brokers)
	cfg.BatchTimeout = linger
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()

	javaMurmur2 := map[string]int32{
		"21":                       -973932308,
		"foobar":                   -790332482,
		"a-little-bit-long-string": -985981536,
		"abc":                      479470107,
	}
	want := map[string]int{}
	for k, h := range javaMurmur2 {
		m := message.NewMessage("", []byte(k))
		bus.SetKey(m, []byte(k))
		require.NoError(t, pub.Publish("placement", m))
		want[k] = int(h&0x7fffffff) % cfg.Partitions
	}
	for _, r := range readAll(t, brokers, "placement", len(javaMurmur2)) {
		require.Equal(t, want[string(r.Key)], r.Partition, "key %q", r.Key)
	}
}

func TestCreateTopics(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers)
	cfg.Partitions = 3
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()

	conn, err := kgo.Dial("tcp", brokers[0])
	require.NoError(t, err)
	defer func() { require.NoError(t, conn.Close()) }()
	require.NoError(t, conn.CreateTopics(kgo.TopicConfig{Topic: "existing", NumPartitions: 5, ReplicationFactor: 1}))

	require.NoError(t, pub.CreateTopics(context.Background(), contract.TopicMonitor, "existing"))
	for topic, n := range map[string]int{contract.TopicMonitor: 3, "existing": 5} {
		parts, err := conn.ReadPartitions(topic)
		require.NoError(t, err)
		require.Len(t, parts, n, topic)
	}
	// Publish creates what is missing.
	require.NoError(t, pub.Publish("new", message.NewMessage("", []byte("x"))))
	parts, err := conn.ReadPartitions("new")
	require.NoError(t, err)
	require.Len(t, parts, 3)
}

// A reader started on a cluster without its topic (the ruler before any
// alert was published) creates it and catches up at once, instead of
// waiting for a topic nobody creates.
func TestReaderCreatesMissingTopic(t *testing.T) {
	brokers := newCluster(t)
	cfg := testConfig(brokers)
	cfg.Partitions = 3
	r, err := kafka.NewReader(cfg, testLogger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	caughtUp := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- r.Consume(ctx, contract.TopicAlerts, time.Time{}, func(bus.Record) {}, func() { close(caughtUp) })
	}()
	select {
	case <-caughtUp:
	case <-ctx.Done():
		t.Fatal("the reader did not catch up on a missing topic")
	}
	conn, err := kgo.Dial("tcp", brokers[0])
	require.NoError(t, err)
	defer func() { require.NoError(t, conn.Close()) }()
	parts, err := conn.ReadPartitions(contract.TopicAlerts)
	require.NoError(t, err)
	require.Len(t, parts, 3, "created with the configured partitions")
	cancel()
	require.NoError(t, <-done)
}

func TestPublishBoundedByMessageContext(t *testing.T) {
	addrs := newCluster(t)
	cfg := testConfig(addrs)
	cfg.WriteTimeout = time.Second
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	require.NoError(t, pub.Ping(context.Background()))
	require.NoError(t, pub.Publish("t", message.NewMessage("", []byte("x"))))

	stopBroker(t, addrs)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	require.Error(t, pub.Ping(ctx))
	m := message.NewMessage("", []byte("y"))
	m.SetContext(ctx)
	start := time.Now()
	require.Error(t, pub.Publish("t", m))
	require.Less(t, time.Since(start), 2*time.Second, "publish must end at the message deadline")

	// The failed record may still be retried; Close does not wait for it
	// past the write timeout.
	start = time.Now()
	if err := pub.Close(); err != nil {
		require.ErrorIs(t, err, kafka.ErrUnflushed)
	}
	require.Less(t, time.Since(start), 3*time.Second)
}

// stopBroker closes the cluster newCluster started for addrs.
func stopBroker(t *testing.T, addrs []string) {
	t.Helper()
	c, ok := clusters.Load(addrs[0])
	require.True(t, ok)
	c.(interface{ Close() }).Close()
}

// Concurrent publishers share produce requests: one open batch per
// partition, with the sender and with kafka-go's Writer.
func TestConcurrentPublishesShareBatches(t *testing.T) {
	for _, linger := range []time.Duration{0, time.Millisecond} {
		t.Run("batch-timeout="+linger.String(), func(t *testing.T) { testConcurrentPublishesShareBatches(t, linger) })
	}
}

func testConcurrentPublishesShareBatches(t *testing.T, linger time.Duration) {
	brokers := newCluster(t)
	reg := prometheus.NewPedanticRegistry()
	cfg := testConfig(brokers)
	cfg.BatchTimeout = linger
	pub, err := kafka.NewPublisher(cfg, testLogger(t), reg)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	require.NoError(t, pub.CreateTopics(context.Background(), "shared"))

	const publishers, each = 64, 20
	var wg sync.WaitGroup
	for range publishers {
		wg.Go(func() {
			for range each {
				m := message.NewMessage("", []byte("x"))
				bus.SetKey(m, []byte("one-partition"))
				if err := pub.Publish("shared", m); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.Equal(t, float64(publishers*each), gathered(t, reg, "tmaflow_kafka_published_records_total"))
	requests := gathered(t, reg, "tmaflow_kafka_produce_batch_records")
	t.Logf("%d records in %.0f produce requests", publishers*each, requests)
	require.Less(t, requests, float64(publishers*each/4), "records were not batched")
}

// gathered sums the values of a counter or gauge, or a histogram's sample
// counts.
func gathered(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}
