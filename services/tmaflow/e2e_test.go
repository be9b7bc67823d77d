package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/services/tmaflow/app"
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
	// api is the base URL of the persister's Prometheus query API.
	api string
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
		"-bridge.listen-address=127.0.0.1:0",
		"-bridge.mqtt.listen-address=127.0.0.1:0",
		"-labeler.listen-address=127.0.0.1:0",
		"-persister.listen-address=127.0.0.1:0",
		"-ruler.listen-address=127.0.0.1:0",
		"-reporter.listen-address=127.0.0.1:0",
		"-registry=" + exampleRegistry,
		"-monitor.ready-check-interval=100ms",
		"-persister.ready.settle=100ms",
	}, args...))
	require.NoError(t, err)
	a, err := app.New(cfg, app.Options{})
	require.NoError(t, err)
	tf := &tmaflow{app: a, done: make(chan error, 1), url: "http://" + a.MonitorAddr() + "/monitor", kafka: a.KafkaBrokers()[0]}
	if addr := a.PersisterAddr(); addr != "" {
		tf.api = "http://" + addr + "/api/v1"
	}
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

// queryResult is the part of a Prometheus instant-query answer the tests
// read.
type queryResult struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// query runs an instant query on the persister's API as user (none when
// empty) and returns the status code and, for 200, the decoded answer.
func query(t *testing.T, api, q string, at int64, user, pass string) (int, queryResult) {
	t.Helper()
	u := api + "/query?" + url.Values{"query": {q}, "time": {strconv.FormatInt(at, 10)}}.Encode()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	var res queryResult
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&res))
	}
	return resp.StatusCode, res
}

// TestQueryEndToEnd posts the demo probe's reference message and finds
// its observations through monitor → labeler → persister as named,
// labelled series in the query API.
func TestQueryEndToEnd(t *testing.T) {
	tf := startTmaflow(t)
	body := fixture(t, "message-20-items.json")
	got := post(t, tf.url, body, demoProbe, demoSecret)
	require.Equal(t, http.StatusOK, got.code, got.body)

	var msg struct {
		Data []struct {
			DescriptionID int64  `json:"descriptionId"`
			Type          string `json:"type"`
			Observations  []struct {
				Value float64 `json:"value"`
				Time  int64   `json:"time"`
			} `json:"observations"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(body, &msg))
	at := msg.Data[0].Observations[0].Time
	// The message has a measurement and an event of every description at
	// one time: each becomes a series of its own.
	type item struct {
		id  int64
		typ string
	}
	values := map[item]string{}
	for _, d := range msg.Data {
		require.Len(t, d.Observations, 1)
		require.Equal(t, at, d.Observations[0].Time)
		values[item{d.DescriptionID, d.Type}] = strconv.FormatFloat(d.Observations[0].Value, 'f', -1, 64)
	}
	// The names examples/registry.yaml gives descriptions 0..9; data of the
	// other type than the description's gets the other name.
	names := map[string]item{
		"cpu_usage_percent":                {0, "measurement"},
		"cpu_usage_percent_event":          {0, "event"},
		"memory_used_bytes":                {1, "measurement"},
		"memory_used_bytes_event":          {1, "event"},
		"disk_free_bytes":                  {2, "measurement"},
		"disk_free_bytes_event":            {2, "event"},
		"network_received_bytes_total":     {3, "measurement"},
		"network_received_bytes_event":     {3, "event"},
		"network_sent_bytes_total":         {4, "measurement"},
		"network_sent_bytes_event":         {4, "event"},
		"load_average_1m":                  {5, "measurement"},
		"load_average_1m_event":            {5, "event"},
		"temperature_celsius":              {6, "measurement"},
		"temperature_celsius_event":        {6, "event"},
		"response_time_milliseconds":       {7, "measurement"},
		"response_time_milliseconds_event": {7, "event"},
		"requests_total":                   {8, "measurement"},
		"requests_event":                   {8, "event"},
		"restart":                          {9, "measurement"},
		"restart_event":                    {9, "event"},
	}
	require.Len(t, values, len(names))

	var res queryResult
	require.Eventually(t, func() bool {
		code, r := query(t, tf.api, `{resource="demo-host"}`, at, demoProbe, demoSecret)
		res = r
		return code == http.StatusOK && len(r.Data.Result) == len(names)
	}, 30*time.Second, 100*time.Millisecond, "series of the message in the query API")
	require.Equal(t, "success", res.Status)
	require.Equal(t, "vector", res.Data.ResultType)
	for _, s := range res.Data.Result {
		name := s.Metric["__name__"]
		it, ok := names[name]
		require.True(t, ok, "unexpected series %v", s.Metric)
		delete(names, name)
		require.Equal(t, map[string]string{
			"__name__":    name,
			"resource":    "demo-host",
			"resource_id": "101098",
			"probe":       demoProbe,
			"tenant":      demoTenant,
			"site":        "lab",
			"owner":       "demo",
		}, s.Metric)
		require.Equal(t, float64(at), s.Value[0])
		require.Equal(t, values[it], s.Value[1], "%s holds the %s of description %d", name, it.typ, it.id)
	}
	require.Empty(t, names, "every description has its series")

	t.Run("credentials are required", func(t *testing.T) {
		code, _ := query(t, tf.api, `{resource="demo-host"}`, at, "", "")
		require.Equal(t, http.StatusUnauthorized, code)
		code, _ = query(t, tf.api, `{resource="demo-host"}`, at, demoProbe, "wrong")
		require.Equal(t, http.StatusUnauthorized, code)
	})
}

// TestReloadReachesEveryService changes the one registry file and reloads
// as SIGHUP does: the monitor and the query API accept a new probe, the
// labeler serves the renamed resource.
func TestReloadReachesEveryService(t *testing.T) {
	regPath := filepath.Join(t.TempDir(), "registry.yaml")
	example, err := os.ReadFile(exampleRegistry)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(regPath, example, 0o600))
	// No file watcher: only Reload can pick the change up.
	tf := startTmaflow(t, "-registry="+regPath, "-labeler.registry.check-interval=0s")
	labelerRegistry := func() string {
		resp, err := http.Get("http://" + tf.app.LabelerAddr() + "/registry")
		require.NoError(t, err)
		defer func() { require.NoError(t, resp.Body.Close()) }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	require.Contains(t, labelerRegistry(), `"demo-host"`)

	hash, err := registry.HashSecret("second-secret", registry.AlgoBcrypt)
	require.NoError(t, err)
	changed := strings.Replace(string(example), "\nprobes:\n", "\nprobes:\n  - id: 5\n    name: second\n    tenant: other\n    secret_hash: \""+hash+"\"\n", 1)
	changed = strings.Replace(changed, "name: demo-host\n", "name: demo-host-renamed\n", 1)
	require.NotEqual(t, string(example), changed)
	require.NoError(t, os.WriteFile(regPath, []byte(changed), 0o600))

	// A probe posts only its own messages.
	body := []byte(strings.Replace(string(fixture(t, "message-compact.json")), `"probeId":0`, `"probeId":5`, 1))
	require.Equal(t, http.StatusUnauthorized, post(t, tf.url, body, "second", "second-secret").code)
	code, _ := query(t, tf.api, "up", 0, "second", "second-secret")
	require.Equal(t, http.StatusUnauthorized, code)

	require.NoError(t, tf.app.Reload())
	require.Equal(t, http.StatusOK, post(t, tf.url, body, "second", "second-secret").code)
	code, _ = query(t, tf.api, "up", 0, "second", "second-secret")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, labelerRegistry(), `"demo-host-renamed"`)

	// A broken file fails the reload and leaves every service as it was.
	require.NoError(t, os.WriteFile(regPath, []byte("probes: [\n"), 0o600))
	require.Error(t, tf.app.Reload())
	require.Equal(t, http.StatusOK, post(t, tf.url, body, "second", "second-secret").code)
	require.Contains(t, labelerRegistry(), `"demo-host-renamed"`)
}
