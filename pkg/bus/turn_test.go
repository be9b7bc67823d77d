package bus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
)

// Handlers running concurrently pass their turns in record order,
// whatever order they reach them in.
func TestTurnsKeepRecordOrder(t *testing.T) {
	const n = 50
	var prev *bus.Turn
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		turn := bus.NewTurn(prev)
		ctxs[i] = bus.WithTurn(context.Background(), turn)
		prev = turn
	}
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := n - 1; i >= 0; i-- { // start the last first
		wg.Go(func() {
			release := bus.AwaitTurn(ctxs[i])
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			release()
		})
	}
	wg.Wait()
	for i := range n {
		require.Equal(t, i, order[i])
	}
}

func TestAwaitTurnWithoutTurnOrEndedContext(t *testing.T) {
	bus.AwaitTurn(context.Background())() // no turn: at once

	first := bus.NewTurn(nil)
	second := bus.NewTurn(first)
	ctx, cancel := context.WithTimeout(bus.WithTurn(context.Background(), second), 10*time.Millisecond)
	defer cancel()
	bus.AwaitTurn(ctx)() // returns when ctx ends though first never released

	first.Release()
	first.Release() // twice is fine
	bus.AwaitTurn(bus.WithTurn(context.Background(), second))()
}

// A turn released early (its record acknowledged without taking it) still
// passes only after the turns before it.
func TestEarlyReleaseWaitsForEarlierTurns(t *testing.T) {
	first := bus.NewTurn(nil)
	second := bus.NewTurn(first)
	third := bus.NewTurn(second)
	second.Release()
	ctx, cancel := context.WithTimeout(bus.WithTurn(context.Background(), third), 50*time.Millisecond)
	defer cancel()
	bus.AwaitTurn(ctx)
	require.Error(t, ctx.Err(), "third waited for first")
	first.Release()
	done := make(chan struct{})
	go func() {
		bus.AwaitTurn(bus.WithTurn(context.Background(), third))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("third never got its turn")
	}
}

type asyncPub struct {
	message.Publisher
	queued  chan string
	acks    chan error
	waiting chan struct{}
}

func (p *asyncPub) PublishAsync(_ string, msgs ...*message.Message) func() error {
	p.queued <- string(msgs[0].Payload)
	return func() error {
		p.waiting <- struct{}{}
		return <-p.acks
	}
}

// PublishInTurn queues in turn order and waits for the acknowledgement
// after releasing the turn.
func TestPublishInTurn(t *testing.T) {
	pub := &asyncPub{queued: make(chan string, 2), acks: make(chan error, 2), waiting: make(chan struct{}, 2)}
	first := bus.NewTurn(nil)
	second := bus.NewTurn(first)
	errs := make(chan error, 2)
	go func() {
		errs <- bus.PublishInTurn(bus.WithTurn(context.Background(), second), pub, "t", message.NewMessage("2", []byte("2")))
	}()
	go func() {
		errs <- bus.PublishInTurn(bus.WithTurn(context.Background(), first), pub, "t", message.NewMessage("1", []byte("1")))
	}()
	require.Equal(t, "1", <-pub.queued)
	require.Equal(t, "2", <-pub.queued, "the second queues while the first still waits for its ack")
	<-pub.waiting
	<-pub.waiting
	pub.acks <- nil
	pub.acks <- nil
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
}
