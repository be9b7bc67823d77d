package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/services/tmaflow/internal/app"
)

// The demo probe of examples/registry.yaml, the file `make run` uses.
const (
	exampleRegistry = "../../examples/registry.yaml"
	demoProbe       = "probe-python-demo"
	demoSecret      = "demo-secret"
	demoTenant      = "demo"
)

type tmaflow struct {
	app  *app.App
	done chan error
	url  string
	// kafka is the bootstrap address the monitor produces to.
	kafka string
}

// startTmaflow runs tmaflow in-process on free ports with a temporary data
// dir; args add or override flags. It is shut down at the end of the test.
func startTmaflow(t *testing.T, args ...string) *tmaflow {
	t.Helper()
	cfg, err := app.ParseFlags(append([]string{
		"-data-dir=" + t.TempDir(),
		"-broker.listen-address=127.0.0.1:0",
		"-monitor.listen-address=127.0.0.1:0",
		"-monitor.auth.registry=" + exampleRegistry,
		"-monitor.ready-check-interval=100ms",
	}, args...))
	require.NoError(t, err)
	a, err := app.New(cfg, app.Options{})
	require.NoError(t, err)
	tf := &tmaflow{app: a, done: make(chan error, 1), url: "http://" + a.MonitorAddr() + "/monitor", kafka: a.KafkaBrokers()[0]}
	go func() { tf.done <- a.Run() }()
	t.Cleanup(func() { require.NoError(t, tf.stop()) })
	require.Eventually(t, a.Prober().IsReady, 10*time.Second, 10*time.Millisecond, "tmaflow not ready")
	return tf
}

func (tf *tmaflow) stop() error {
	tf.app.Shutdown()
	select {
	case err := <-tf.done:
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("tmaflow did not stop")
	}
}

type answer struct {
	code       int
	retryAfter string
	body       string
}

func post(t *testing.T, url string, body []byte, user, pass string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b)}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// messages splits a body into the bytes of each message, as a TMA
// consumer must find them in the records' values.
func messages(t *testing.T, body []byte) [][]byte {
	t.Helper()
	body = bytes.TrimSpace(body)
	if body[0] != '[' {
		return [][]byte{body}
	}
	var raws []json.RawMessage
	require.NoError(t, json.Unmarshal(body, &raws))
	out := make([][]byte, len(raws))
	for i, r := range raws {
		out[i] = r
	}
	return out
}

func resourceID(t *testing.T, msg []byte) int64 {
	t.Helper()
	var m struct {
		ResourceID int64 `json:"resourceId"`
	}
	require.NoError(t, json.Unmarshal(msg, &m))
	return m.ResourceID
}

func readTopic(t *testing.T, addr string) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := brokertest.ReadAll(ctx, addr, contract.TopicMonitor)
	require.NoError(t, err)
	return recs
}

func headers(hs []kafka.Header) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

// TestIngestEndToEnd posts the reference's messages and reads them back
// from topic-monitor with a plain kafka-go consumer.
func TestIngestEndToEnd(t *testing.T) {
	tf := startTmaflow(t)
	began := time.Now()

	var want [][]byte // values of records that must be in the topic
	for _, tc := range []struct {
		name       string
		file       string
		user, pass string
		wantCode   int
	}{
		{name: "object with 20 data items", file: "message-20-items.json", user: demoProbe, pass: demoSecret, wantCode: http.StatusOK},
		{name: "object with 2 data items", file: "message-2-items.json", user: demoProbe, pass: demoSecret, wantCode: http.StatusOK},
		{name: "compact object by probe id", file: "message-compact.json", user: "0", pass: demoSecret, wantCode: http.StatusOK},
		{name: "array", file: "array.json", user: demoProbe, pass: demoSecret, wantCode: http.StatusOK},
		{name: "object without credentials", file: "message-2-items.json", wantCode: http.StatusUnauthorized},
		{name: "array without credentials", file: "array.json", wantCode: http.StatusUnauthorized},
		{name: "object with a wrong secret", file: "message-compact.json", user: demoProbe, pass: "wrong", wantCode: http.StatusUnauthorized},
		{name: "unknown probe", file: "message-compact.json", user: "probe-unknown", pass: demoSecret, wantCode: http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := fixture(t, tc.file)
			got := post(t, tf.url, body, tc.user, tc.pass)
			require.Equal(t, tc.wantCode, got.code, got.body)
			if tc.wantCode == http.StatusOK {
				want = append(want, messages(t, body)...)
			}
		})
	}

	recs := readTopic(t, tf.kafka)
	require.Len(t, recs, len(want), "exactly the accepted messages, one record each")
	got := map[string]kafka.Message{}
	for _, r := range recs {
		got[string(r.Value)] = r
	}
	for _, msg := range want {
		r, ok := got[string(msg)]
		require.True(t, ok, "message not in topic-monitor: %.80s", msg)
		id, err := contract.ParseResourceKey(r.Key)
		require.NoError(t, err)
		require.Equal(t, resourceID(t, msg), id, "key is the 8-byte big-endian resourceId")

		h := headers(r.Headers)
		require.Equal(t, demoTenant, h[contract.HeaderTenant])
		require.Equal(t, contract.SourceHTTP, h[contract.HeaderSource])
		require.Equal(t, contract.ContentTypeTMA, h[contract.HeaderContentType])
		ns, err := strconv.ParseInt(h[contract.HeaderReceivedAt], 10, 64)
		require.NoError(t, err, "received-at is unix ns")
		require.WithinRange(t, time.Unix(0, ns), began.Add(-time.Second), time.Now())
		require.Len(t, h, 4, "only the contract headers: %v", h)
	}
}

// A record's partition depends only on its key, so each resource's
// messages stay in order.
func TestSameResourceSamePartition(t *testing.T) {
	tf := startTmaflow(t)
	body := fixture(t, "message-compact.json")
	for range 5 {
		require.Equal(t, http.StatusOK, post(t, tf.url, body, demoProbe, demoSecret).code)
	}
	recs := readTopic(t, tf.kafka)
	require.Len(t, recs, 5)
	for i, r := range recs {
		require.Equal(t, recs[0].Partition, r.Partition)
		if i > 0 {
			require.Greater(t, r.Offset, recs[i-1].Offset)
		}
	}
}
