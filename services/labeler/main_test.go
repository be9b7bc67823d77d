package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/services/labeler/labeler"
)

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kafka.brokers=127.0.0.1:1"}, "registry is required"},
		{[]string{"--registry=r.yaml"}, "kafka.brokers: at least one broker is required"},
		{[]string{"--registry=r.yaml", "--kafka.brokers=x:1", "--samples.max-labels=-1"}, "samples.max-labels must be >= 0"},
		{[]string{"--nope"}, "flag provided but not defined"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			require.ErrorContains(t, runMain(context.Background(), tc.args, io.Discard), tc.want)
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

// TestMainKafka runs the command against an in-process Kafka: a TMA record
// on topic-monitor comes out on topic-metrics keyed by tenant and
// resource, and the consumed offset is committed after that.
func TestMainKafka(t *testing.T) {
	brokers := startKafka(t)
	stop := startLabeler(t, brokers)

	w := &kafkago.Writer{Addr: kafkago.TCP(brokers...), RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond}
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer tcancel()
	require.NoError(t, w.WriteMessages(tctx, kafkago.Message{
		Topic: contract.TopicMonitor,
		Key:   contract.ResourceKey(101098),
		Value: []byte(`{"probeId":1,"resourceId":101098,"messageId":1,"sentTime":1700000000,"data":[{"descriptionId":28,"type":"measurement","observations":[{"time":1700000000,"value":1024}]}]}`),
		Headers: []kafkago.Header{
			{Key: contract.HeaderTenant, Value: []byte("acme")},
			{Key: contract.HeaderSource, Value: []byte(contract.SourceHTTP)},
			{Key: contract.HeaderReceivedAt, Value: []byte("1700000000000000001")},
			{Key: contract.HeaderContentType, Value: []byte(contract.ContentTypeTMA)},
		},
	}))
	require.NoError(t, w.Close())

	var (
		recs []kafkago.Message
		err  error
	)
	require.Eventually(t, func() bool {
		recs, err = brokertest.ReadAll(tctx, brokers[0], contract.TopicMetrics)
		return err == nil && len(recs) > 0
	}, 20*time.Second, 50*time.Millisecond, "no record on topic-metrics: %v", err)
	require.Len(t, recs, 1)
	rec := recs[0]
	require.Equal(t, samples.MetricsKey("acme", "resource_id=101098"), rec.Key)
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	require.Equal(t, map[string]string{contract.HeaderTenant: "acme", contract.HeaderReceivedAt: "1700000000000000001"}, headers)
	b, err := samples.Decode(rec.Value)
	require.NoError(t, err)
	require.Equal(t, []samples.Label{
		{Name: "__name__", Value: "bytes_sent_bytes_total"}, {Name: "owner", Value: "ops"}, {Name: "probe", Value: "k8s-probe"},
		{Name: "resource", Value: "worker-3"}, {Name: "resource_id", Value: "101098"}, {Name: "resource_type", Value: "node"},
		{Name: "site", Value: "lisbon"}, {Name: "tenant", Value: "acme"},
	}, b.Series[0].Labels)
	require.Equal(t, []samples.Sample{{TimestampMs: 1700000000000, Value: 1024}}, b.Series[0].Samples)
	require.Equal(t, &samples.Metadata{Type: samples.Counter, Unit: "bytes"}, b.Series[0].Metadata)

	// The labeler's group committed past the record once it was published.
	client := &kafkago.Client{Addr: kafkago.TCP(brokers...)}
	require.Eventually(t, func() bool {
		resp, err := client.OffsetFetch(tctx, &kafkago.OffsetFetchRequest{
			GroupID: labeler.DefaultConsumerGroup, Topics: map[string][]int{contract.TopicMonitor: {0, 1}},
		})
		if err != nil {
			return false
		}
		var committed int64
		for _, p := range resp.Topics[contract.TopicMonitor] {
			if p.CommittedOffset > 0 {
				committed += p.CommittedOffset
			}
		}
		return committed == 1
	}, 10*time.Second, 50*time.Millisecond)

	stop()
}

// startKafka starts an in-process Kafka for the test.
func startKafka(t *testing.T) []string {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs()
}

// startLabeler runs the command on brokers until it is ready; args add
// flags. stop ends it and requires a clean exit.
func startLabeler(t *testing.T, brokers []string, args ...string) (stop func()) {
	t.Helper()
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		done <- runMain(ctx, append([]string{
			"--kafka.brokers=" + strings.Join(brokers, ","), "--kafka.partitions=2", "--listen-address=" + addr,
			"--registry=" + filepath.Join("labeler", "testdata", "registry.yaml"),
			"--kafka.heartbeat-interval=100ms", "--kafka.session-timeout=6s", "--kafka.rebalance-timeout=4s",
			"--kafka.commit-interval=50ms", "--kafka.fetch-max-wait=100ms", "--log.level=error",
		}, args...), io.Discard)
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond)
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("labeler did not stop")
		}
	}
}
