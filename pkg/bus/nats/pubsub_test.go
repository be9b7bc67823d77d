package nats_test

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/bus/nats/natstest"
)

// testLogger writes to stderr, not to t: the suite leaks a subscriber in
// TestPublishSubscribeInOrder, whose logs would outlive the test.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newPubSub(t *testing.T, url, group string, maxInFlight int) (*nats.Publisher, *nats.Subscriber) {
	t.Helper()
	cfg := natstest.Config(url)
	cfg.ConsumerGroup = group
	cfg.MaxInFlight = maxInFlight
	pub, err := nats.NewPublisher(cfg, testLogger(), nil)
	require.NoError(t, err)
	sub, err := nats.NewSubscriber(cfg, testLogger(), nil)
	require.NoError(t, err)
	return pub, sub
}

// groupOf names the group of a conformance test after the test.
func groupOf(t *testing.T) string {
	return "cg-" + strings.NewReplacer("/", "-").Replace(t.Name())
}

func TestPubSub(t *testing.T) {
	url := natstest.Start(t)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:      true,
			ExactlyOnceDelivery: false,
			// Order holds per partition; these messages have no key and
			// spread over 8 partitions. TestPubSubOrdered keys them.
			GuaranteedOrder: false,
			Persistent:      true,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			// The suite expects one unacknowledged message at a time
			// (TestNoAck); the batch tests of pkg/bus cover more.
			return newPubSub(t, url, groupOf(t), 1)
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return newPubSub(t, url, group, 1)
		},
	)
}

// keyed gives every message without a key the same key, so a topic's
// messages share one partition.
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
	url := natstest.Start(t)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     true,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			pub, sub := newPubSub(t, url, groupOf(t), 1)
			return keyed{pub}, sub
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			pub, sub := newPubSub(t, url, group, 1)
			return keyed{pub}, sub
		},
	)
}

func TestPubSubNoGroup(t *testing.T) {
	url := natstest.Start(t)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                   false,
			ExactlyOnceDelivery:              false,
			GuaranteedOrder:                  false,
			Persistent:                       true,
			NewSubscriberReceivesOldMessages: true,
			ForceShort:                       true,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, url, "", 1)
		},
		nil,
	)
}
