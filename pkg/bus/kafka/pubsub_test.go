package kafka_test

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
)

// newCluster starts an in-process Kafka-protocol broker. Topics are not
// auto-created, so the adapter's own topic creation is what makes them.
func newCluster(t testing.TB, opts ...kfake.Opt) []string {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	require.NoError(t, err)
	addrs := c.ListenAddrs()
	clusters.Store(addrs[0], c)
	t.Cleanup(func() {
		clusters.Delete(addrs[0])
		c.Close()
	})
	return addrs
}

// clusters maps a cluster's first address to it, for tests that stop it.
var clusters sync.Map

// testConfig shortens the group timings so rebalances take a few hundred
// milliseconds instead of seconds.
func testConfig(brokers []string) kafka.Config {
	cfg := kafka.DefaultConfig()
	cfg.Brokers = brokers
	cfg.HeartbeatInterval = 100 * time.Millisecond
	cfg.SessionTimeout = 6 * time.Second // kfake's minimum
	cfg.RebalanceTimeout = 4 * time.Second
	cfg.CommitInterval = 100 * time.Millisecond
	cfg.NackBackoff = 10 * time.Millisecond
	cfg.FetchMaxWait = 200 * time.Millisecond
	// Watermill's suite expects one unacknowledged message at a time
	// (TestNoAck); window_test.go covers more.
	cfg.MaxInFlight = 1
	return cfg
}

// testLogger writes to stderr, not to t: the suite leaks a subscriber in
// TestPublishSubscribeInOrder (it defers require.NoError(t, sub.Close()),
// closing at once), whose logs would outlive the test.
func testLogger(testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newPubSub(t *testing.T, brokers []string, group string) (*kafka.Publisher, *kafka.Subscriber) {
	t.Helper()
	cfg := testConfig(brokers)
	cfg.ConsumerGroup = group
	pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
	require.NoError(t, err)
	sub, err := kafka.NewSubscriber(cfg, testLogger(t), nil)
	require.NoError(t, err)
	return pub, sub
}

// groupOf names the group of a conformance test after the test: every
// pub/sub one test creates shares it (as the suite expects), and parallel
// tests do not rebalance each other.
func groupOf(t *testing.T) string {
	return "cg-" + strings.NewReplacer("/", "-").Replace(t.Name())
}

func TestPubSub(t *testing.T) {
	brokers := newCluster(t)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:      true,
			ExactlyOnceDelivery: false,
			// Order holds per partition; these records have no key and
			// spread over 8 partitions. TestPubSubOrdered keys them.
			GuaranteedOrder: false,
			Persistent:      true,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, brokers, groupOf(t))
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return newPubSub(t, brokers, group)
		},
	)
}

// keyed gives every message without a key the same key, so a topic's
// records share one partition, as watermill-kafka's ordered suite does with
// its partitioning marshaler.
type keyed struct{ message.Publisher }

func (k keyed) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		if bus.Key(m) == nil {
			bus.SetKey(m, []byte("order"))
		}
	}
	return k.Publisher.Publish(topic, msgs...)
}

func TestPubSubOrdered(t *testing.T) {
	brokers := newCluster(t)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     true,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			pub, sub := newPubSub(t, brokers, groupOf(t))
			return keyed{pub}, sub
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			pub, sub := newPubSub(t, brokers, group)
			return keyed{pub}, sub
		},
	)
}

func TestPubSubNoGroup(t *testing.T) {
	brokers := newCluster(t)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                   false,
			ExactlyOnceDelivery:              false,
			GuaranteedOrder:                  false,
			Persistent:                       true,
			NewSubscriberReceivesOldMessages: true,
			// Without a group every subscriber reads every record: the long
			// variant (50 subscribers x 5000 records) takes 20 s under -race
			// and tests nothing the grouped suites do not.
			ForceShort: true,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, brokers, "")
		},
		nil,
	)
}
