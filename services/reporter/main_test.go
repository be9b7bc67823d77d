package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/services/reporter/reporter"
	"github.com/tmaflow/tmaflow/services/reporter/reporttest"
)

// runMain runs the command as main does, with ctx and stderr.
func runMain(ctx context.Context, args []string, stderr io.Writer) error {
	return module.Main(ctx, reporter.Module(), args, strings.NewReader(""), io.Discard, stderr)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kafka.brokers=127.0.0.1:1", "--query.url=ftp://x"}, `query.url "ftp://x": want an http(s) URL`},
		{[]string{"--kafka.brokers=127.0.0.1:1", "--run.max-attempts=0"}, "run.max-attempts must be > 0"},
		{[]string{"--kafka.brokers=127.0.0.1:1", "--kafka.consumer-group=g"}, "the reporter consumes no topic"},
		{[]string{"--nope"}, "flag provided but not defined"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			require.ErrorContains(t, runMain(context.Background(), tc.args, io.Discard), tc.want)
		})
	}
}

// TestMainKafka runs the command against an in-process Kafka and a query
// API over an empty TSDB: ready, a run asked for over HTTP lands on
// topic-reports keyed by the report's name with its tenant.
func TestMainKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)
	brokers := cluster.ListenAddrs()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	api := httptest.NewServer(reporttest.NewAPI(db, ""))
	t.Cleanup(api.Close)

	addr := peertest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runMain(ctx, []string{"--kafka.brokers=" + strings.Join(brokers, ","), "--listen-address=" + addr,
			"--data-dir=" + t.TempDir(), "--reports.dir=reporter/testdata/reports", "--query.url=" + api.URL}, io.Discard)
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 20*time.Millisecond)

	resp, err := http.Post("http://"+addr+"/api/v1/reports/demo/daily/run?at=2026-11-02T00:05:00Z", "", nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))

	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	recs, err := brokertest.ReadAll(rctx, brokers[0], contract.TopicReports)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, "daily", string(recs[0].Key))
	var tenant string
	for _, h := range recs[0].Headers {
		if h.Key == contract.HeaderTenant {
			tenant = string(h.Value)
		}
	}
	require.Equal(t, "demo", tenant)

	cancel()
	require.NoError(t, <-done)
}
