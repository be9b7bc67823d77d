package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// syncBuffer collects a peer's output for the failure message.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPrometheus runs Debian's prometheus with config (server mode, or
// agent mode with agent) until the end of the test.
func startPrometheus(t *testing.T, config string, agent bool) *syncBuffer {
	t.Helper()
	bin := peertest.Binary(t, "prometheus")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(config), 0o600))
	args := []string{"--config.file=" + cfgPath, "--web.listen-address=" + peertest.FreeAddr(t)}
	if agent {
		args = append(args, "--enable-feature=agent", "--storage.agent.path="+filepath.Join(dir, "agent"))
	} else {
		args = append(args, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	return out
}

// awaitSeries waits until an instant query as the demo probe returns
// want series and returns them.
func awaitSeries(t *testing.T, tf *tmaflow, q string, want int) queryResult {
	t.Helper()
	var res queryResult
	require.Eventually(t, func() bool {
		code, r := query(t, tf.api, q, time.Now().Unix(), demoProbe, demoSecret)
		res = r
		return code == http.StatusOK && len(r.Data.Result) == want
	}, 60*time.Second, 200*time.Millisecond, "%d series for %s in the query API", want, q)
	return res
}

// TestRemoteWritePrometheus: Debian's Prometheus, as a server and as an
// agent, scrapes a target and remote-writes (1.0) into tmaflow with the
// demo probe's credentials; the series come back through the query API
// and promtool, labelled with the probe's tenant.
func TestRemoteWritePrometheus(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = io.WriteString(w, "# HELP rw_probe_value A value to remote-write.\n# TYPE rw_probe_value gauge\nrw_probe_value{site=\"lab\"} 42\n")
	}))
	t.Cleanup(target.Close)
	tf := startTmaflow(t)
	promtool := peertest.Binary(t, "promtool")

	for _, tc := range []struct {
		name  string
		agent bool
	}{{"server", false}, {"agent", true}} {
		t.Run(tc.name, func(t *testing.T) {
			job := "rw-" + tc.name
			startPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
remote_write:
  - url: http://%s/api/v1/write
    basic_auth:
      username: %s
      password: %s
    queue_config:
      batch_send_deadline: 200ms
      min_backoff: 50ms
      max_backoff: 1s
`, job, strings.TrimPrefix(target.URL, "http://"), tf.app.MonitorAddr(), demoProbe, demoSecret), tc.agent)

			res := awaitSeries(t, tf, `rw_probe_value{job="`+job+`"}`, 1)
			s := res.Data.Result[0]
			require.Equal(t, map[string]string{
				"__name__": "rw_probe_value",
				"instance": strings.TrimPrefix(target.URL, "http://"),
				"job":      job,
				"site":     "lab",
				"tenant":   demoTenant,
			}, s.Metric)
			require.Equal(t, "42", s.Value[1])
			// Prometheus's own series about the scrape come along.
			awaitSeries(t, tf, `up{job="`+job+`"} == 1`, 1)

			out, err := exec.Command(promtool, "query", "instant",
				"http://"+demoProbe+":"+demoSecret+"@"+tf.app.PersisterAddr(), `rw_probe_value{job="`+job+`"}`).CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Contains(t, string(out), "rw_probe_value{")
			require.Contains(t, string(out), "=> 42 @[")
		})
	}
}

// v2Client is Prometheus's own remote-write client sending 2.0 messages
// as the demo probe.
func v2Client(t *testing.T, tf *tmaflow) remote.WriteClient {
	t.Helper()
	u, err := url.Parse("http://" + tf.app.MonitorAddr() + "/api/v1/write")
	require.NoError(t, err)
	c, err := remote.NewWriteClient("tmaflow", &remote.ClientConfig{
		URL:     &config_util.URL{URL: u},
		Timeout: model.Duration(10 * time.Second),
		HTTPClientConfig: config_util.HTTPClientConfig{
			BasicAuth: &config_util.BasicAuth{Username: demoProbe, Password: config_util.Secret(demoSecret)},
		},
		WriteProtoMsg: remoteapi.WriteV2MessageType,
	})
	require.NoError(t, err)
	return c
}

// v2Body encodes one 2.0 request: for each series (name, value, … label
// pairs) one sample at ts.
func v2Body(t *testing.T, ts int64, value float64, series ...[]string) []byte {
	t.Helper()
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, ls := range series {
		s := writev2.TimeSeries{
			Samples:  []writev2.Sample{{Value: value, Timestamp: ts}},
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("Remote-written by the test."), UnitRef: st.Symbolize("")},
		}
		for _, l := range ls {
			s.LabelsRefs = append(s.LabelsRefs, st.Symbolize(l))
		}
		req.Timeseries = append(req.Timeseries, s)
	}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// TestRemoteWrite2 drives the receiver with Prometheus's remote-write
// client in 2.0 mode: the answer confirms the samples written, the series
// are queryable, and a threshold rule on a remote-written series fires at
// the ruler as it does for TMA data.
func TestRemoteWrite2(t *testing.T) {
	rules := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(rules, demoTenant), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(rules, demoTenant, "rw.yml"), []byte(`
groups:
  - name: remote-written
    interval: 1s
    rules:
      - alert: RemoteWrittenHot
        expr: rw_temperature_celsius > 90
        labels:
          severity: warning
`), 0o600))
	tf := startTmaflow(t, "-ruler.rules.dir="+rules)
	c := v2Client(t, tf)

	now := time.Now().UnixMilli()
	stats, err := c.Store(context.Background(), v2Body(t, now, 21.5,
		[]string{"__name__", "rw_temperature_celsius", "instance", "sensor-1", "job", "sensors"},
		[]string{"__name__", "rw_temperature_celsius", "instance", "sensor-2", "job", "sensors"},
	), 0)
	require.NoError(t, err)
	require.True(t, stats.Confirmed, "2.0 answer headers")
	require.Equal(t, 2, stats.Samples)
	require.Zero(t, stats.Histograms)

	res := awaitSeries(t, tf, `rw_temperature_celsius{job="sensors"}`, 2)
	for _, s := range res.Data.Result {
		require.Equal(t, demoTenant, s.Metric["tenant"])
		require.Equal(t, "21.5", s.Value[1])
	}
	require.Empty(t, alerts(t, tf, "RemoteWrittenHot"), "below the threshold")

	_, err = c.Store(context.Background(), v2Body(t, time.Now().UnixMilli(), 97,
		[]string{"__name__", "rw_temperature_celsius", "instance", "sensor-2", "job", "sensors"}), 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		as := alerts(t, tf, "RemoteWrittenHot")
		return len(as) == 1 && as[0].State == "firing" && as[0].Labels["instance"] == "sensor-2"
	}, 30*time.Second, 50*time.Millisecond, "the rule fires on the remote-written series")

	t.Run("native histograms are refused, not dropped", func(t *testing.T) {
		st := writev2.NewSymbolTable()
		req := &writev2.Request{Timeseries: []writev2.TimeSeries{{
			LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("rw_latency")},
			Histograms: []writev2.Histogram{{Timestamp: now, Count: &writev2.Histogram_CountInt{CountInt: 1}, ZeroCount: &writev2.Histogram_ZeroCountInt{ZeroCountInt: 1}}},
		}}}
		req.Symbols = st.Symbols()
		raw, err := req.Marshal()
		require.NoError(t, err)
		stats, err := c.Store(context.Background(), snappy.Encode(nil, raw), 0)
		require.ErrorContains(t, err, "400")
		require.ErrorContains(t, err, "native histograms are not supported yet")
		require.Zero(t, stats.Histograms)
	})
}

type ruleAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// alerts lists the ruler's alerts named name.
func alerts(t *testing.T, tf *tmaflow, name string) []ruleAlert {
	t.Helper()
	resp, err := http.Get("http://" + tf.app.RulerAddr() + "/api/v1/alerts")
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		Data struct {
			Alerts []ruleAlert `json:"alerts"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	var out []ruleAlert
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

// TestTextPush: a Prometheus text body pushed Pushgateway-style (as
// `curl --data-binary @file` sends it) and an OpenMetrics body imported are
// stored with the path's labels; a bad line refuses the whole body.
func TestTextPush(t *testing.T) {
	tf := startTmaflow(t)
	base := "http://" + tf.app.MonitorAddr()
	push := func(path, contentType string, body []byte) answer {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", contentType)
		req.SetBasicAuth(demoProbe, demoSecret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { require.NoError(t, resp.Body.Close()) }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return answer{code: resp.StatusCode, body: string(b)}
	}
	now := time.Now()
	for _, tc := range []struct {
		name, path, contentType, body string
		wantCode                      int
		wantBody                      string
	}{
		{
			name: "prometheus text, pushgateway path", path: "/metrics/job/backup/instance/db-1", contentType: "text/plain; version=0.0.4",
			body:     "# TYPE backup_last_success_seconds gauge\nbackup_last_success_seconds 1.7e9\nbackup_files{kind=\"full\"} 12\n",
			wantCode: 200, wantBody: `{"status":"ok","series":2,"samples":2}`,
		},
		{
			name: "openmetrics import", path: "/api/v1/import/prometheus?extra_label=job=import", contentType: "application/openmetrics-text; version=1.0.0",
			body:     fmt.Sprintf("# TYPE batch_runs counter\nbatch_runs_total{queue=\"a\"} 5 %d\n# EOF\n", now.Unix()),
			wantCode: 200, wantBody: `{"status":"ok","series":1,"samples":1}`,
		},
		{
			name: "bad line", path: "/metrics/job/backup", contentType: "text/plain",
			body:     "backup_good 1\nbackup_bad{ 2\n",
			wantCode: 400,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := push(tc.path, tc.contentType, []byte(tc.body))
			require.Equal(t, tc.wantCode, got.code, got.body)
			if tc.wantBody != "" {
				require.Equal(t, tc.wantBody, got.body)
			}
		})
	}
	res := awaitSeries(t, tf, `{job="backup"}`, 2)
	for _, s := range res.Data.Result {
		require.Equal(t, "db-1", s.Metric["instance"])
		require.Equal(t, demoTenant, s.Metric["tenant"])
	}
	res = awaitSeries(t, tf, `batch_runs_total{job="import"}`, 1)
	require.Equal(t, "5", res.Data.Result[0].Value[1])
	code, r := query(t, tf.api, `backup_good`, time.Now().Unix(), demoProbe, demoSecret)
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, r.Data.Result, "nothing of a refused body is stored")
}

// TestRemoteWriteBrokerOutage: while the broker is down remote write gets
// 503 with Retry-After; the client retries each request until it gets 2xx,
// as Prometheus does, and the TSDB then holds every sample exactly once.
func TestRemoteWriteBrokerOutage(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, "127.0.0.1:0")
	addr := b.Addrs()[0]
	tf := startTmaflow(t, "-kafka.brokers="+addr, "-monitor.publish-timeout=1s")
	c := v2Client(t, tf)

	start := time.Now().Add(-time.Minute).UnixMilli()
	const requests = 12
	outage := 0
	send := func(i int) {
		body := v2Body(t, start+int64(i)*1000, float64(i), []string{"__name__", "rw_outage", "instance", "a"}, []string{"__name__", "rw_outage", "instance", "b"})
		for attempt := 0; ; attempt++ {
			stats, err := c.Store(context.Background(), body, attempt)
			if err == nil {
				require.Equal(t, 2, stats.Samples)
				return
			}
			var rec remote.RecoverableError
			require.True(t, errors.As(err, &rec), "only retryable errors: %v", err)
			require.Contains(t, err.Error(), "503")
			outage++
			require.Less(t, attempt, 400, "no 2xx after the broker returned")
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range 4 {
		send(i)
	}
	b.Close()
	restarted := make(chan struct{})
	go func() {
		time.Sleep(2 * time.Second)
		startBroker(t, dir, addr)
		close(restarted)
	}()
	for i := 4; i < requests; i++ {
		send(i)
	}
	<-restarted
	require.Positive(t, outage, "requests during the outage were refused")

	q := `count_over_time(rw_outage[5m])`
	require.Eventually(t, func() bool {
		code, r := query(t, tf.api, q, time.Now().Unix(), demoProbe, demoSecret)
		if code != http.StatusOK || len(r.Data.Result) != 2 {
			return false
		}
		for _, s := range r.Data.Result {
			if s.Value[1] != strconv.Itoa(requests) {
				return false
			}
		}
		return true
	}, 60*time.Second, 200*time.Millisecond, "%d samples per series, none lost, none twice", requests)
}

// TestAnonymousProbe: with -monitor.auth.anonymous-tenant, an unmodified
// TMA probe posting without credentials lands in that tenant, and so does
// a remote write without credentials; wrong credentials are still refused.
func TestAnonymousProbe(t *testing.T) {
	tf := startTmaflow(t, "-monitor.auth.anonymous-tenant="+demoTenant)
	now := time.Now()
	got := post(t, tf.url, cpuMessage(42, now), "", "")
	require.Equal(t, http.StatusOK, got.code, got.body)
	require.Equal(t, http.StatusUnauthorized, post(t, tf.url, cpuMessage(43, now), demoProbe, "wrong").code)

	req, err := http.NewRequest(http.MethodPost, "http://"+tf.app.MonitorAddr()+"/api/v1/write",
		bytes.NewReader(v2Body(t, now.UnixMilli(), 7, []string{"__name__", "rw_anonymous", "instance", "probe"})))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
	req.Header.Set("Content-Encoding", "snappy")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	require.Equal(t, "1", resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"))

	res := awaitSeries(t, tf, `cpu_usage_percent{resource="demo-host"}`, 1)
	require.Equal(t, "42", res.Data.Result[0].Value[1])
	require.Equal(t, demoTenant, res.Data.Result[0].Metric["tenant"])
	awaitSeries(t, tf, `rw_anonymous`, 1)
}
