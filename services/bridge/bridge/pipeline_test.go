package bridge

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

func testPipeline(t *testing.T, edit func(*Config), admit func() error) (*pipeline, *fakeBus) {
	t.Helper()
	cfg := testConfig(t)
	edit(&cfg)
	m, err := LoadMapping(cfg.Mapping)
	require.NoError(t, err)
	bus := newFakeBus()
	p := newPipeline(cfg, m, bus, time.Now, admit, slog.New(slog.DiscardHandler), newMetrics(prometheus.NewRegistry()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.batcher.run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, bus
}

func number(tenant string) inbound {
	return inbound{tenant: tenant, topic: "acme/sites/s/devices/d/metrics/m", probeID: -1, payload: []byte("1"), received: time.Now()}
}

// A tenant above its messages/s is slowed down, counted, and loses
// nothing.
func TestTenantLimit(t *testing.T) {
	p, bus := testPipeline(t, func(c *Config) { c.MessagesPerSecond = 100 }, nil)
	start := time.Now()
	for range 120 {
		require.NoError(t, p.handle(context.Background(), number("acme")))
	}
	require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond, "20 messages above the burst at 100/s")
	require.Positive(t, counter(t, p.metrics.throttled.WithLabelValues("acme")))
	require.Len(t, bus.topic(contract.TopicSamples), 120)
}

// While the process's budget refuses ingest, messages wait unacknowledged.
func TestAdmitHolds(t *testing.T) {
	var refuse atomic.Bool
	refuse.Store(true)
	p, bus := testPipeline(t, func(*Config) {}, func() error {
		if refuse.Load() {
			return errors.New("memory budget")
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- p.handle(context.Background(), number("acme")) }()
	select {
	case <-done:
		t.Fatal("stored while the budget refuses")
	case <-time.After(200 * time.Millisecond):
	}
	refuse.Store(false)
	require.NoError(t, <-done)
	require.Len(t, bus.topic(contract.TopicSamples), 1)

	// Shutdown releases a held message unacknowledged.
	refuse.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	require.ErrorIs(t, p.handle(ctx, number("acme")), context.Canceled)
}
