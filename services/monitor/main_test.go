package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/registry"
)

func TestHashSecretSubcommand(t *testing.T) {
	for _, algo := range []string{"bcrypt", "argon2id"} {
		t.Run(algo, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runMain(context.Background(), []string{"hash-secret", "--algo", algo}, strings.NewReader("s3cret\n"), &out, &errOut)
			require.NoError(t, err, errOut.String())
			hash := strings.TrimSpace(out.String())
			r, err := registry.New(&registry.File{Probes: []registry.Probe{{ID: 1, Name: "p", Tenant: "t", SecretHash: hash}}}, registry.Options{})
			require.NoError(t, err)
			_, ok := r.Verify("p", "s3cret")
			require.True(t, ok)
			_, ok = r.Verify("p", "s3cret\n")
			require.False(t, ok)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--kafka.brokers=127.0.0.1:1"}, "auth.registry is required"},
		{[]string{"--auth.disabled"}, "kafka.brokers: at least one broker is required"},
		{[]string{"--auth.disabled", "--kafka.brokers=x:1", "--listen-address=:0"}, "refusing to serve without authentication"},
		{[]string{"--nope"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := runMain(context.Background(), tt.args, strings.NewReader(""), io.Discard, io.Discard)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestMain_Kafka runs the command against an in-process Kafka and reads
// the record back with a plain kafka-go consumer.
func TestMainKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	addr := freeAddr(t)
	registryFile := filepath.Join("monitor", "testdata", "registry.yaml")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- runMain(ctx, []string{
			"--kafka.brokers=" + brokers, "--kafka.partitions=1", "--listen-address=" + addr,
			"--auth.registry=" + registryFile, "--ready-check-interval=50ms", "--log.level=error",
		}, strings.NewReader(""), io.Discard, io.Discard)
	}()

	base := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200
	}, 10*time.Second, 20*time.Millisecond)

	body, err := os.ReadFile(filepath.Join("monitor", "testdata", "message.json"))
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/monitor", bytes.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth("probe-one", "probe-one-secret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, 200, resp.StatusCode, "%s", got)

	reader := kafkago.NewReader(kafkago.ReaderConfig{Brokers: cluster.ListenAddrs(), Topic: contract.TopicMonitor, MaxWait: 100 * time.Millisecond})
	defer func() { require.NoError(t, reader.Close()) }()
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	rec, err := reader.ReadMessage(rctx)
	require.NoError(t, err)
	require.Equal(t, contract.ResourceKey(101098), rec.Key)
	require.Equal(t, bytes.TrimSpace(body), rec.Value)
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	receivedAt, err := strconv.ParseInt(headers[contract.HeaderReceivedAt], 10, 64)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), time.Unix(0, receivedAt), time.Minute)
	delete(headers, contract.HeaderReceivedAt)
	require.Equal(t, map[string]string{
		contract.HeaderTenant:      "acme",
		contract.HeaderSource:      "http",
		contract.HeaderContentType: "application/json",
	}, headers)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("monitor did not stop")
	}
}
