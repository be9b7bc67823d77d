package monitor

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

// TestGoChannel runs the service on Watermill's in-process pub/sub and
// reads the records back as a consumer would.
func TestGoChannel(t *testing.T) {
	pubsub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 16}, watermill.NopLogger{})
	t.Cleanup(func() { require.NoError(t, pubsub.Close()) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sub, err := pubsub.Subscribe(ctx, contract.TopicMonitor)
	require.NoError(t, err)

	h := start(t, testConfig(), Options{Publisher: pubsub})
	body := fixture(t, "array.json")
	resp := h.do(t, nil, request{body: body, user: "probe-one", pass: "probe-one-secret"})
	require.Equal(t, 200, resp.code, "%s", resp.body)

	// gochannel delivers each message from its own goroutine: any order.
	var ids []int64
	for range 2 {
		select {
		case m := <-sub:
			id, err := contract.ParseResourceKey(bus.Key(m))
			require.NoError(t, err)
			ids = append(ids, id)
			require.Equal(t, "acme", m.Metadata.Get(contract.HeaderTenant))
			require.Equal(t, contract.SourceHTTP, m.Metadata.Get(contract.HeaderSource))
			require.Contains(t, string(body), string(m.Payload))
			m.Ack()
		case <-ctx.Done():
			t.Fatal("record not delivered")
		}
	}
	require.ElementsMatch(t, []int64{7, 8}, ids)
}
