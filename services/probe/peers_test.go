package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// startPeer runs a peer binary until the test ends.
func startPeer(t *testing.T, bin string, args ...string) *syncLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	logs := &syncLog{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s logs:\n%s", filepath.Base(bin), logs.String())
		}
	})
	return logs
}

// auditConfig is the always-down output whose records the test reads
// back as the truth of what was sampled.
func auditOutput(t *testing.T) string {
	audit := newRWReceiver(t)
	audit.down.Store(true)
	return fmt.Sprintf(`  - name: audit
    type: remote_write
    remote_write: {url: %q}
`, audit.url())
}

// countBy counts the sampled samples by metric name.
func countBy(want map[string]bool, name string) int {
	n := 0
	for k := range want {
		if strings.HasPrefix(k, "__name__="+name+",") || strings.HasPrefix(k, "__name__="+name+"@") {
			n++
		}
	}
	return n
}

// TestRemoteWriteToPrometheus: Debian's Prometheus as the receiver
// (--web.enable-remote-write-receiver); every sampled node_load1 is
// queried back.
func TestRemoteWriteToPrometheus(t *testing.T) {
	bin := peertest.Binary(t, "prometheus")
	addr := peertest.FreeAddr(t)
	promCfg := filepath.Join(t.TempDir(), "prometheus.yml")
	// Live-first sends a backlog behind newer samples: the receiver must
	// accept out-of-order samples.
	require.NoError(t, os.WriteFile(promCfg, []byte("storage:\n  tsdb:\n    out_of_order_time_window: 1h\n"), 0o644))
	startPeer(t, bin, "--config.file="+promCfg, "--storage.tsdb.path="+t.TempDir(), "--web.listen-address="+addr, "--web.enable-remote-write-receiver")
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 50*time.Millisecond)

	dir := t.TempDir()
	outputs := fmt.Sprintf(`outputs:
  - name: prom
    type: remote_write
    remote_write: {url: "http://%s/api/v1/write"}
%s`, addr, auditOutput(t))
	p := startProbe(t, nil, `
labels: {instance: edge-1, job: node}
collectors:
  - {name: host, type: host, interval: 100ms}
`+outputs, dir)
	time.Sleep(2 * time.Second)
	p.stop(t)
	drain(t, dir, "prom", outputs)
	want := sampled(t, dir, []string{"prom", "audit"})

	q := func(query string) float64 {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(query))
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		var body struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		require.Len(t, body.Data.Result, 1, query)
		var v float64
		_, err = fmt.Sscan(body.Data.Result[0].Value[1].(string), &v)
		require.NoError(t, err)
		return v
	}
	n := countBy(want, "node_load1")
	require.Greater(t, n, 15)
	require.Equal(t, float64(n), q(`count_over_time(node_load1{instance="edge-1",job="node"}[10m])`))
	require.Equal(t, float64(countBy(want, "node_memory_MemAvailable_bytes")), q(`count_over_time(node_memory_MemAvailable_bytes{instance="edge-1"}[10m])`))
	require.Positive(t, q(`sum(rate(node_cpu_seconds_total{instance="edge-1"}[1m]))`))
}

// TestMQTTToMosquitto: QoS 1 to Debian's mosquitto; a subscriber reads
// every sampled sample back from the text-format payloads.
func TestMQTTToMosquitto(t *testing.T) {
	bin := peertest.Binary(t, "mosquitto")
	addr := peertest.FreeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	require.NoError(t, os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\n"), 0o644))
	startPeer(t, bin, "-c", conf)

	var mu sync.Mutex
	got := map[string]int{}
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("reader").SetConnectRetry(true).SetConnectRetryInterval(50 * time.Millisecond))
	tok := sub.Connect()
	require.True(t, tok.WaitTimeout(20*time.Second))
	require.NoError(t, tok.Error())
	defer sub.Disconnect(100)
	tok = sub.Subscribe("edge/edge-1/metrics", 1, func(_ mqtt.Client, m mqtt.Message) {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(bytes.NewReader(m.Payload()))
		if err != nil {
			t.Errorf("payload: %v", err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for name, f := range fams {
			for _, mt := range f.Metric {
				got[fmt.Sprintf("%s@%d", name, mt.GetTimestampMs())]++
			}
		}
	})
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())

	dir := t.TempDir()
	outputs := fmt.Sprintf(`outputs:
  - name: broker
    type: mqtt
    mqtt: {broker: "tcp://%s", topic: edge/edge-1/metrics, client_id: edge-1}
%s`, addr, auditOutput(t))
	p := startProbe(t, nil, `
collectors:
  - {name: host, type: host, interval: 100ms, parts: [load]}
`+outputs, dir)
	time.Sleep(1500 * time.Millisecond)
	p.stop(t)
	drain(t, dir, "broker", outputs)
	want := sampled(t, dir, []string{"broker", "audit"})
	n := countBy(want, "node_load1")
	require.Greater(t, n, 10)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		c := 0
		for k := range got {
			if strings.HasPrefix(k, "node_load1@") {
				c++
			}
		}
		return c == n
	}, 10*time.Second, 20*time.Millisecond)
}
