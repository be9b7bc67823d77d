package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	natsbus "github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
)

// natsFlags run the all-in-one on its embedded NATS server, on a free
// port; a killed process's partitions move after 2 s (ack wait and pin).
var natsFlags = []string{"-bus=nats", "-nats.listen-address=127.0.0.1:0", "-nats.ack-wait=2s", "-nats.pinned-ttl=2s"}

// readNATS returns the records of topic on the NATS server at url, as a
// group-less reader sees them.
func readNATS(t *testing.T, url, topic string) []bus.Record {
	t.Helper()
	cfg := natsbus.DefaultConfig()
	cfg.URL = url
	r, err := natsbus.NewReader(cfg, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		recs []bus.Record
	)
	done := make(chan error, 1)
	go func() {
		done <- r.Consume(ctx, topic, time.Time{}, func(rec bus.Record) {
			mu.Lock()
			recs = append(recs, rec)
			mu.Unlock()
		}, cancel)
	}()
	require.NoError(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	return recs
}

// TestNATSEndToEnd runs the pipeline of TestQueryEndToEnd and
// TestAlertFromPost on the embedded NATS server (-bus=nats): POST
// /monitor → topic-monitor with the contract's key and headers → labeler →
// persister's query API, and → ruler → Alertmanager and topic-alerts.
func TestNATSEndToEnd(t *testing.T) {
	hook := peertest.NewWebhook(t)
	am := peertest.Alertmanager(t, hook.URL, "alertname", "resource")
	tf := startTmaflow(t, append(natsFlags, "-ruler.rules.dir=../../examples/rules", "-ruler.alertmanager.url="+am)...)
	require.True(t, strings.HasPrefix(tf.kafka, "nats://127.0.0.1:"), tf.kafka)

	body := fixture(t, "message-20-items.json")
	got := post(t, tf.url, body, demoProbe, demoSecret)
	require.Equal(t, http.StatusOK, got.code, got.body)
	var msg struct {
		Data []struct {
			Observations []struct {
				Time int64 `json:"time"`
			} `json:"observations"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &msg))
	at := msg.Data[0].Observations[0].Time
	require.Eventually(t, func() bool {
		code, r := query(t, tf.api, `{resource="demo-host"}`, at, demoProbe, demoSecret)
		return code == http.StatusOK && len(r.Data.Result) == 20
	}, 30*time.Second, 100*time.Millisecond, "the message's 20 series in the query API")

	recs := readNATS(t, tf.kafka, contract.TopicMonitor)
	require.Len(t, recs, 1)
	require.Equal(t, contract.ResourceKey(resourceID(t, body)), recs[0].Key, "TMA consumers read the resource id as the key")
	require.Equal(t, demoTenant, recs[0].Headers[contract.HeaderTenant])
	require.Equal(t, "http", recs[0].Headers[contract.HeaderSource])
	require.NotEmpty(t, recs[0].Headers[contract.HeaderReceivedAt])
	require.JSONEq(t, string(body), string(recs[0].Value))

	sent := time.Now()
	require.Equal(t, http.StatusOK, post(t, tf.url, cpuMessage(97.5, sent), demoProbe, demoSecret).code)
	n := hook.Await(t, 30*time.Second, func(n peertest.Notification) bool {
		return n.Status == "firing" && len(n.Alerts) > 0 && n.Alerts[0].Labels["alertname"] == "HighCPUUsage"
	})
	t.Logf("POST to Alertmanager webhook over NATS: %s", n.At.Sub(sent))
	require.Equal(t, "demo-host", n.Alerts[0].Labels["resource"])
	require.Equal(t, demoTenant, n.Alerts[0].Labels[ruler.TenantLabel])

	var alert ruler.Alert
	require.Eventually(t, func() bool {
		for _, r := range readNATS(t, tf.kafka, contract.TopicAlerts) {
			var al ruler.Alert
			require.NoError(t, json.Unmarshal(r.Value, &al))
			if al.Labels["alertname"] == "HighCPUUsage" {
				require.Equal(t, demoTenant, r.Headers[contract.HeaderTenant])
				require.NotEmpty(t, r.Key)
				alert = al
				return true
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond)
	require.Equal(t, "firing", alert.State)
}

// TestNATSKill9LosesNothing kills the all-in-one on NATS (sync_interval
// always) with SIGKILL while a probe posts, restarts it on the same data
// dir and finds every acknowledged observation stored exactly once in the
// TSDB: the embedded JetStream kept what it acknowledged, and the consumer
// groups went on from what their handlers had acknowledged.
func TestNATSKill9LosesNothing(t *testing.T) {
	dir := t.TempDir()
	regPath := filepath.Join(dir, "registry.yaml")
	example, err := os.ReadFile(exampleRegistry)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(regPath, example, 0o600))
	args := append([]string{"-data-dir=" + dir, "-broker.listen-address=127.0.0.1:0",
		"-monitor.listen-address=127.0.0.1:0", "-bridge.listen-address=127.0.0.1:0", "-bridge.mqtt.listen-address=127.0.0.1:0",
		"-labeler.listen-address=127.0.0.1:0", "-persister.listen-address=127.0.0.1:0", "-ruler.listen-address=127.0.0.1:0",
		"-reporter.listen-address=127.0.0.1:0", "-registry=" + regPath}, natsFlags...)
	start := func() (p *process, monitor, api string) {
		p = startProcess(t, args...)
		monitor = "http://" + p.waitLog(t, "monitor listening")["addr"].(string) + "/monitor"
		api = "http://" + p.waitLog(t, "persister listening")["addr"].(string) + "/api/v1"
		return p, monitor, api
	}
	first, monitor, _ := start()

	// One observation per POST, 100 ms apart in event time, in order.
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	const planned = 3000
	var acked, sent atomic.Int64
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		for i := range planned {
			sent.Add(1)
			req, err := http.NewRequest(http.MethodPost, monitor, bytes.NewReader(cpuMessage(float64(i%100), base.Add(time.Duration(i)*100*time.Millisecond))))
			if err != nil {
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.SetBasicAuth(demoProbe, demoSecret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return // killed
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				if acked.Load() == 0 {
					time.Sleep(10 * time.Millisecond) // not ready yet: the next one
					continue
				}
				return
			}
			acked.Add(1)
		}
	}()
	require.Eventually(t, func() bool { return acked.Load() >= 300 }, 60*time.Second, time.Millisecond)
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	<-posted
	_ = first.wait(t)
	require.Less(t, acked.Load(), int64(planned), "killed mid-stream")
	t.Logf("killed after %d acknowledged POSTs (%d sent)", acked.Load(), sent.Load())

	second, _, api := start()
	end := base.Add(time.Duration(sent.Load()) * 100 * time.Millisecond)
	q := fmt.Sprintf(`count_over_time(cpu_usage_percent{resource="demo-host"}[%ds])`, int(end.Sub(base).Seconds())+2)
	var stored int64
	require.Eventually(t, func() bool {
		code, r := query(t, api, q, end.Unix()+1, demoProbe, demoSecret)
		if code != http.StatusOK || len(r.Data.Result) != 1 {
			return false
		}
		_, err := fmt.Sscan(r.Data.Result[0].Value[1].(string), &stored)
		return err == nil && stored >= acked.Load()
	}, 90*time.Second, 200*time.Millisecond, "every acknowledged observation stored")
	t.Logf("stored %d samples for %d acknowledged and %d sent POSTs", stored, acked.Load(), sent.Load())
	require.LessOrEqual(t, stored, sent.Load(), "no sample that was not sent, none twice")
	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.wait(t))
}
