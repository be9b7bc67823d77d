package kafka

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	kafka "github.com/segmentio/kafka-go"

	"github.com/stretchr/testify/require"
	"github.com/tmaflow/tmaflow/pkg/bus"
)

// fakeWriter answers WriteMessages with err and records the deadline.
type fakeWriter struct {
	err      error
	deadline time.Time
	closed   bool
}

func (w *fakeWriter) WriteMessages(ctx context.Context, _ ...kafka.Message) error {
	w.deadline, _ = ctx.Deadline()
	return w.err
}

func (w *fakeWriter) Close() error { w.closed = true; return nil }

type noIdle struct{}

func (noIdle) CloseIdleConnections() {}

func newFakePublisher(t *testing.T, w *fakeWriter, reg prometheus.Registerer) *Publisher {
	t.Helper()
	a := newAdmin(Config{Brokers: []string{"unused:9092"}, Partitions: 1, ReplicationFactor: 1}, nil)
	a.known.Store("t", struct{}{})
	return newPublisher(w, noIdle{}, a, time.Minute, time.Second, slog.New(slog.DiscardHandler), reg)
}

func TestPublishErrors(t *testing.T) {
	down := errors.New("broker down")
	for _, tc := range []struct {
		name               string
		err                error
		wantErr            string
		wantTooLarge       bool
		wantOK, wantFailed float64
	}{
		{name: "ok", wantOK: 3},
		{name: "all failed", err: down, wantErr: "publish to t: 3 of 3 records failed: broker down", wantFailed: 3},
		{name: "too large for the broker", err: kafka.WriteErrors{kafka.MessageSizeTooLarge, nil, nil}, wantErr: "publish to t: 1 of 3 records failed: record too large for the broker: " + kafka.MessageSizeTooLarge.Error(), wantTooLarge: true, wantOK: 2, wantFailed: 1},
		{name: "too large for the writer", err: kafka.MessageTooLargeError{}, wantErr: "publish to t: 3 of 3 records failed: record too large for the broker: " + kafka.MessageSizeTooLarge.Error(), wantTooLarge: true, wantFailed: 3},
		{name: "one failed", err: kafka.WriteErrors{nil, kafka.NotLeaderForPartition, nil}, wantErr: "publish to t: 1 of 3 records failed: " + kafka.NotLeaderForPartition.Error(), wantOK: 2, wantFailed: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newFakePublisher(t, &fakeWriter{err: tc.err}, nil)
			msgs := []*message.Message{message.NewMessage("1", nil), message.NewMessage("2", nil), message.NewMessage("3", nil)}
			err := p.Publish("t", msgs...)
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, tc.wantErr)
			}
			require.Equal(t, tc.wantTooLarge, errors.Is(err, bus.ErrTooLarge))
			require.Equal(t, tc.wantOK, testutil.ToFloat64(p.metrics.records.WithLabelValues("t")))
			require.Equal(t, tc.wantFailed, testutil.ToFloat64(p.metrics.errors.WithLabelValues("t")))
		})
	}
}

func TestPublishDeadline(t *testing.T) {
	w := &fakeWriter{}
	p := newFakePublisher(t, w, nil)

	before := time.Now()
	require.NoError(t, p.Publish("t", message.NewMessage("1", nil)))
	require.WithinDuration(t, before.Add(time.Minute), w.deadline, time.Second, "no message deadline: the publish timeout")

	soon := time.Now().Add(time.Second)
	later, cancel := context.WithDeadline(context.Background(), soon.Add(time.Second))
	defer cancel()
	earliest, cancel2 := context.WithDeadline(context.Background(), soon)
	defer cancel2()
	a, b := message.NewMessage("a", nil), message.NewMessage("b", nil)
	a.SetContext(later)
	b.SetContext(earliest)
	require.NoError(t, p.Publish("t", a, b))
	require.Equal(t, soon, w.deadline, "the earliest message deadline")

	c, d := message.NewMessage("c", nil), message.NewMessage("d", nil)
	c.SetContext(earliest)
	d.SetContext(earliest)
	require.NoError(t, p.Publish("t", c, d))
	require.Equal(t, soon, w.deadline, "a shared message context bounds the publish")

	require.NoError(t, p.Close())
	require.True(t, w.closed)
	require.ErrorIs(t, p.Publish("t", message.NewMessage("1", nil)), ErrPublisherClosed)
	require.NoError(t, p.Close(), "second close")
}
