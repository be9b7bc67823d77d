package persister

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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// Tests against Debian's prometheus package (prometheus, promtool). In CI
// (CI=true) a missing binary fails them; elsewhere they are skipped.

// startPrometheus runs a real Prometheus with the remote-write receiver
// on a free port and a temporary directory; it returns its base URL.
func startPrometheus(t *testing.T) string {
	t.Helper()
	bin := peertest.Binary(t, "prometheus")
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("global:\n  scrape_interval: 1h\n"), 0o600))
	addr := peertest.FreeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin,
		"--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--web.enable-remote-write-receiver",
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})
	u := "http://" + addr
	require.Eventually(t, func() bool {
		resp, err := http.Get(u + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200
	}, 30*time.Second, 50*time.Millisecond, "prometheus did not become ready")
	return u
}

// comparable decodes an API answer for comparison: numbers keep their
// text (so 1.5 and 1.500 differ), result lists are sorted (series order is
// not part of the API), and the error text is reduced to what both
// versions share.
func comparable(t *testing.T, body string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	var v map[string]any
	require.NoError(t, dec.Decode(&v), body)
	delete(v, "error") // compared separately: wording differs between versions
	if data, ok := v["data"].(map[string]any); ok {
		if res, ok := data["result"].([]any); ok {
			sortJSON(res)
		}
	}
	if data, ok := v["data"].([]any); ok {
		sortJSON(data)
	}
	return v
}

func errorText(t *testing.T, body string) string {
	t.Helper()
	var v struct{ Error string }
	require.NoError(t, json.Unmarshal([]byte(body), &v))
	return v.Error
}

func sortJSON(list []any) {
	sort.Slice(list, func(i, j int) bool {
		a, _ := json.Marshal(list[i])
		b, _ := json.Marshal(list[j])
		return string(a) < string(b)
	})
}

// TestCompareWithPrometheus stores the same samples in the persister and,
// through the persister's own remote-write consumer, in a real Prometheus,
// then asks both the same questions.
func TestCompareWithPrometheus(t *testing.T) {
	prom := startPrometheus(t)
	cfg := func(c *Config) { c.RemoteWrite.URLs = []string{prom + "/api/v1/write"} }
	h := startAPIWith(t, cfg, nil, acmeBatches())

	// Evaluation times half a second off the samples: Prometheus 3 selects
	// ranges left-open, 2.x closed, and the two agree away from samples.
	at := func(d time.Duration) string { return fmt.Sprintf("%d.5", base.Add(d).Unix()) }
	rng := url.Values{"start": {at(0)}, "end": {at(9 * time.Minute)}, "step": {"30s"}}
	with := func(v url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = vs
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out.Add(kv[i], kv[i+1])
		}
		return out
	}
	tests := []struct {
		path     string
		params   url.Values
		wantCode int
		errText  string // a part of the error both versions write
	}{
		{"/api/v1/query", url.Values{"query": {"temp_celsius"}, "time": {at(150 * time.Second)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"odd_value"}, "time": {at(0)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"sum by (site) (temp_celsius)"}, "time": {at(150 * time.Second)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"rate(requests_total[1m])"}, "time": {at(5 * time.Minute)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"count_over_time(temp_celsius[2m])"}, "time": {at(5 * time.Minute)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {`temp_celsius{resource="a"}[1m]`}, "time": {at(150 * time.Second)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"topk(1, temp_celsius) / 3"}, "time": {at(150 * time.Second)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"scalar(sum(temp_celsius))"}, "time": {at(150 * time.Second)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"time()"}, "time": {at(150 * time.Second)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {`"a<b"`}, "time": {at(0)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"absent(nothing_here)"}, "time": {at(0)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"temp_celsius"}, "time": {at(time.Hour)}}, 200, ""},
		{"/api/v1/query", url.Values{"query": {"temp_celsius"}, "time": {base.Add(150 * time.Second).UTC().Format(time.RFC3339Nano)}}, 200, ""},
		{"/api/v1/query_range", with(rng, "query", "temp_celsius"), 200, ""},
		{"/api/v1/query_range", with(rng, "query", "sum by (resource) (rate(requests_total[1m]))"), 200, ""},
		{"/api/v1/query_range", with(rng, "query", "odd_value"), 200, ""},
		{"/api/v1/query_range", with(rng, "query", "1.5"), 200, ""},
		{"/api/v1/series", url.Values{"match[]": {"temp_celsius"}}, 200, ""},
		{"/api/v1/series", url.Values{"match[]": {`{__name__=~".+"}`}}, 200, ""},
		{"/api/v1/series", url.Values{"match[]": {`odd_value{kind="inf"}`, `requests_total`}}, 200, ""},
		{"/api/v1/labels", nil, 200, ""},
		{"/api/v1/labels", url.Values{"match[]": {"odd_value"}}, 200, ""},
		{"/api/v1/label/__name__/values", nil, 200, ""},
		{"/api/v1/label/resource/values", nil, 200, ""},
		{"/api/v1/label/tenant/values", nil, 200, ""},
		{"/api/v1/label/kind/values", url.Values{"match[]": {`odd_value{kind=~"n.*"}`}}, 200, ""},
		// Errors: same code and type.
		{"/api/v1/query", url.Values{"query": {"sum("}}, 400, "parse error"},
		{"/api/v1/query", url.Values{"query": {"1"}, "time": {"abc"}}, 400, `cannot parse "abc" to a valid timestamp`},
		{"/api/v1/query", url.Values{"query": {`label_replace(temp_celsius, "resource", "x", "", "")`}, "time": {at(0)}}, 422, "vector cannot contain metrics with the same labelset"},
		{"/api/v1/query_range", url.Values{"query": {"1"}, "start": {"10"}, "end": {"1"}, "step": {"1"}}, 400, "end timestamp must not be before start time"},
		{"/api/v1/query_range", url.Values{"query": {"1"}, "start": {"1"}, "end": {"10"}, "step": {"0"}}, 400, "zero or negative query resolution step widths are not accepted"},
		{"/api/v1/query_range", url.Values{"query": {"1"}, "start": {"0"}, "end": {"20000"}, "step": {"1"}}, 400, "exceeded maximum resolution of 11,000 points per timeseries"},
		{"/api/v1/query_range", url.Values{"query": {"1"}, "end": {"10"}, "step": {"1"}}, 400, `cannot parse "" to a valid timestamp`},
		{"/api/v1/series", nil, 400, "no match[] parameter provided"},
		{"/api/v1/series", url.Values{"match[]": {`{a=""}`}}, 400, "match[] must contain at least one non-empty matcher"},
		{"/api/v1/label/%ff/values", nil, 400, "invalid label name"},
	}
	// Both hold every series: equal answers are not equally empty ones.
	count := url.Values{"query": {`count({__name__=~".+"})`}, "time": {at(150 * time.Second)}}
	for _, u := range []string{h.url, prom} {
		code, body := request(t, http.MethodGet, u+"/api/v1/query", count, "acme")
		require.Equal(t, 200, code, body)
		require.Contains(t, body, `,"9"]`, u)
	}
	for _, tt := range tests {
		t.Run(tt.path+"?"+tt.params.Encode(), func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				if method == http.MethodPost && strings.HasPrefix(tt.path, "/api/v1/label/") {
					continue // GET only
				}
				ourCode, ours := request(t, method, h.url+tt.path, tt.params, "acme")
				theirCode, theirs := request(t, method, prom+tt.path, tt.params, "")
				require.Equal(t, tt.wantCode, theirCode, "prometheus: %s", theirs)
				require.Equal(t, theirCode, ourCode, "ours: %s\nprometheus: %s", ours, theirs)
				require.Equal(t, comparable(t, theirs), comparable(t, ours), "%s\nours:       %s\nprometheus: %s", method, ours, theirs)
				if tt.errText != "" {
					require.Contains(t, errorText(t, ours), tt.errText)
					require.Contains(t, errorText(t, theirs), tt.errText)
				}
			}
		})
	}
}

// TestRemoteWriteToPrometheusRefusal: a sample a real Prometheus refuses
// (out of order there, within the persister's window) is answered 400 and
// dead-lettered by the remote-write stage, while the persister stores it.
func TestRemoteWriteToPrometheusRefusal(t *testing.T) {
	prom := startPrometheus(t)
	h := startAPIWith(t, func(c *Config) { c.RemoteWrite.URLs = []string{prom + "/api/v1/write"} }, nil, acmeBatches())
	late := batch("acme", at(series("temp_celsius", "resource", "a", "site", "lab"), time.Second, 77))
	h.publish(t, late)

	dead := h.dlq.published(contract.TopicDLQ)
	require.Len(t, dead, 1)
	require.Equal(t, StageRemoteWrite, dead[0].Metadata.Get(contract.HeaderStage))
	require.Contains(t, dead[0].Metadata.Get(contract.HeaderError), "400 Bad Request")
	require.Contains(t, dead[0].Metadata.Get(contract.HeaderError), "out of order sample")
	require.Contains(t, stored(t, h.svc.db)[`{__name__="temp_celsius", resource="a", site="lab", tenant="acme"}`],
		samples.Sample{TimestampMs: ms(time.Second), Value: 77})
}

// acmeBatches is the API fixture of one tenant plus a counter.
func acmeBatches() []*samples.Batch {
	b := fixtureBatches()[0]
	for _, r := range []string{"a", "b"} {
		s := series("requests_total", "resource", r)
		for i := 0; i < 40; i++ {
			s = at(s, time.Duration(i)*15*time.Second, i*i)
		}
		b.Series = append(b.Series, s)
	}
	return []*samples.Batch{b}
}

func startAPIWith(t *testing.T, mod func(*Config), v verifier, batches []*samples.Batch) *harness {
	t.Helper()
	cfg := testConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	h := start(t, cfg, Options{Now: func() time.Time { return base.Add(150 * time.Second) }}, v)
	for _, b := range batches {
		h.publish(t, b)
	}
	return h
}

func request(t *testing.T, method, u string, params url.Values, tenant string) (int, string) {
	t.Helper()
	var req *http.Request
	var err error
	if method == http.MethodPost {
		req, err = http.NewRequest(method, u, strings.NewReader(params.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, err = http.NewRequest(method, u+"?"+params.Encode(), nil)
		require.NoError(t, err)
	}
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	return send(t, req)
}

// TestPromtool queries the persister with Debian's promtool, authenticated
// as a probe of the registry, and compares its output with promtool's
// against a real Prometheus holding the same samples.
func TestPromtool(t *testing.T) {
	promtool := peertest.Binary(t, "promtool")
	prom := startPrometheus(t)
	reg, err := registry.Open(filepath.Join("testdata", "registry.yaml"), registry.Options{})
	require.NoError(t, err)
	h := startAPIWith(t, func(c *Config) {
		c.RemoteWrite.URLs = []string{prom + "/api/v1/write"}
		c.API.TenantHeader = ""
	}, reg, acmeBatches())

	ours := strings.Replace(h.url, "http://", "http://probe-one:probe-one-secret@", 1)
	ts := fmt.Sprintf("%d.5", base.Add(150*time.Second).Unix())
	for _, args := range [][]string{
		{"instant", "--time=" + ts, "SERVER", `temp_celsius{resource="a"}`},
		{"instant", "--time=" + ts, "SERVER", `sum by (site) (rate(requests_total[1m]))`},
		{"instant", "-o", "json", "--time=" + ts, "SERVER", `odd_value{kind="inf"}`},
		{"range", "--start=" + fmt.Sprint(base.Unix()), "--end=" + fmt.Sprint(base.Add(time.Minute).Unix()), "--step=30s", "SERVER", `temp_celsius{resource="b"}`},
		{"series", "--match=temp_celsius", "SERVER"},
		{"labels", "SERVER", "resource"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			run := func(server string) string {
				a := append([]string{"query"}, args...)
				for i := range a {
					if a[i] == "SERVER" {
						a[i] = server
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				out, err := exec.CommandContext(ctx, promtool, a...).CombinedOutput()
				require.NoError(t, err, "promtool %v: %s", a, out)
				return string(out)
			}
			got := run(ours)
			require.NotEmpty(t, strings.TrimSpace(got))
			require.Equal(t, run(prom), got)
			require.NotContains(t, got, "probe-one-secret")
		})
	}
	// Without credentials the API refuses promtool.
	out, err := exec.Command(promtool, "query", "instant", h.url, "temp_celsius").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "no tenant")
}
