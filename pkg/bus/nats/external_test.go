package nats_test

import (
	"context"
	"fmt"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/bus/nats/natstest"
	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// startNATSServer runs Debian's nats-server with JetStream on a temporary
// directory and a user, and returns its URL.
func startNATSServer(t *testing.T, user, pass string) string {
	t.Helper()
	addr := peertest.FreeAddr(t)
	runNATSServer(t, addr, t.TempDir(), user, pass)
	return "nats://" + addr
}

// runNATSServer runs nats-server on addr and store dir until the test
// ends, and returns its process.
func runNATSServer(t *testing.T, addr, dir, user, pass string) *exec.Cmd {
	t.Helper()
	return peertest.NATSServer(t, addr, dir, "--user", user, "--pass", pass)
}

// TestExternalNATSServerKill9 kills nats-server with SIGKILL while
// publishers wait for acknowledgements, restarts it on the same store and
// finds every acknowledged message in the stream. (A process kill leaves
// the page cache to the kernel; losing a machine needs sync_interval
// always, as the embedded server defaults to.)
func TestExternalNATSServerKill9(t *testing.T) {
	addr, dir := peertest.FreeAddr(t), t.TempDir()
	srv := runNATSServer(t, addr, dir, "u", "p")
	cfg := natstest.Config("nats://" + addr)
	cfg.User, cfg.Password = "u", "p"
	cfg.PublishTimeout = 2 * time.Second
	pub := publisher(t, cfg)
	require.Eventually(t, func() bool { return pub.Ping(t.Context()) == nil }, 10*time.Second, 50*time.Millisecond)

	var acked, sent atomic.Int64
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; ; i++ {
				sent.Add(1)
				if pub.Publish("kill", message.NewMessage("", fmt.Appendf(nil, "%d-%d", g, i))) != nil {
					return
				}
				acked.Add(1)
			}
		}()
	}
	require.Eventually(t, func() bool { return acked.Load() >= 500 }, 20*time.Second, time.Millisecond)
	require.NoError(t, srv.Process.Signal(syscall.SIGKILL))
	for range 4 {
		<-done
	}
	t.Logf("killed after %d acknowledged publishes (%d sent)", acked.Load(), sent.Load())
	runNATSServer(t, addr, dir, "u", "p")
	require.Eventually(t, func() bool { return pub.Ping(t.Context()) == nil }, 10*time.Second, 50*time.Millisecond)
	stored := streamMsgs(t, "nats://u:p@"+addr, "kill")
	require.GreaterOrEqual(t, int64(stored), acked.Load(), "no acknowledged message lost")
	require.LessOrEqual(t, int64(stored), sent.Load())
}

// The adapter against a separate nats-server process (external mode), as
// Debian ships it (2.9: no pinned consumers, no consumer reset, so one
// subscriber per group keeps the order and give-back uses Nak).
func TestExternalNATSServer(t *testing.T) {
	url := startNATSServer(t, "tmaflow", "s3cret")
	cfg := natstest.Config(url)
	cfg.User, cfg.Password = "tmaflow", "s3cret"
	// One at a time: a nacked message comes again before the next.
	cfg.MaxInFlight = 1
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	bad := cfg
	bad.Password = "wrong"
	badPub, err := nats.NewPublisher(bad, testLogger(), nil)
	require.NoError(t, err, "connecting is retried in the background")
	require.Error(t, badPub.Ping(ctx), "wrong credentials are not ready")
	require.NoError(t, badPub.Close())

	pub := publisher(t, cfg)
	require.Eventually(t, func() bool { return pub.Ping(ctx) == nil }, 10*time.Second, 50*time.Millisecond)
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	publish(t, pub, "external", "resource-1", want...)

	sub := subscriber(t, cfg, "g")
	ch, err := sub.Subscribe(ctx, "external")
	require.NoError(t, err)
	var got []string
	nacked := false
	for len(got) < len(want) {
		m := receive(t, ch)
		if len(got) == 3 && !nacked {
			nacked = true
			m.Nack()
			continue
		}
		got = append(got, string(m.Payload))
		require.Equal(t, []byte("resource-1"), bus.Key(m))
		m.Ack()
	}
	require.Equal(t, want, got, "one partition, in order, the nacked one again in its place")
	require.Eventually(t, func() bool {
		lag, err := sub.LagOf("external")(ctx)
		return err == nil && lag == 0
	}, 10*time.Second, 50*time.Millisecond)

	r, err := nats.NewReader(cfg, testLogger())
	require.NoError(t, err)
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	caught := make(chan struct{})
	n := 0
	go func() {
		_ = r.Consume(rctx, "external", time.Time{}, func(bus.Record) { n++ }, func() { close(caught) })
	}()
	select {
	case <-caught:
		require.Equal(t, len(want), n)
	case <-ctx.Done():
		t.Fatal("the reader did not catch up")
	}
}
