// Package natstest starts embedded NATS servers for tests.
package natstest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus/nats"
)

// Start runs an embedded NATS server with JetStream in a temporary
// directory, on a free port, until the test ends, and returns its URL.
func Start(t testing.TB) string {
	t.Helper()
	s, err := nats.StartServer(nats.ServerConfig{
		ListenAddress: "127.0.0.1:0",
		StoreDir:      t.TempDir(),
		SyncInterval:  nats.SyncAlways,
		MaxStore:      -1,
	}, nil)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s.URL()
}

// Config is the client configuration for url with short timings: nacked
// messages come again after 10 ms and a closed subscriber's partitions
// move at once.
func Config(url string) nats.Config {
	cfg := nats.DefaultConfig()
	cfg.URL = url
	cfg.NackBackoff = 10 * time.Millisecond
	cfg.AckWait = 5 * time.Second
	cfg.PinnedTTL = 2 * time.Second
	return cfg
}
