package persister

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// secs formats an offset from base as the API's Unix seconds.
func secs(d time.Duration) string { return strconv.FormatInt(base.Add(d).Unix(), 10) }

// fixtureBatches is the data of the API tests: two tenants, the other one
// with a label and a value that must never reach acme.
func fixtureBatches() []*samples.Batch {
	a := series("temp_celsius", "resource", "a", "site", "lab")
	b := series("temp_celsius", "resource", "b", "site", "lab")
	for i := 0; i < 40; i++ {
		d := time.Duration(i) * 15 * time.Second
		a = at(a, d, 20+i)
		b = at(b, d, 0.5*float64(i))
	}
	a.Metadata = &samples.Metadata{Type: samples.Gauge, Unit: "celsius", Help: "Temperature."}
	odd := []samples.Series{
		at(series("odd_value", "kind", "nan"), 0*time.Second, math.NaN()),
		at(series("odd_value", "kind", "inf"), 0*time.Second, math.Inf(1)),
		at(series("odd_value", "kind", "neginf"), 0*time.Second, math.Inf(-1)),
		at(series("odd_value", "kind", "small"), 0*time.Second, 1e-7),
		at(series("odd_value", "kind", "html", "note", `<b>&"x"\`), 0*time.Second, 1),
	}
	other := series("temp_celsius", "resource", "secret", "site", "hq", "only_globex", "yes")
	other = at(other, 0*time.Second, 99, 150*time.Second, 99)
	other.Metadata = &samples.Metadata{Type: samples.Counter, Help: "Hidden."}
	return []*samples.Batch{
		batch("acme", append([]samples.Series{a, b}, odd...)...),
		batch("globex", other, at(series("globex_only_metric"), 0*time.Second, 1)),
	}
}

func startAPI(t *testing.T, mod func(*Config), v verifier) *harness {
	t.Helper()
	cfg := testConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	h := start(t, cfg, Options{Now: func() time.Time { return base.Add(150 * time.Second) }}, v)
	for _, b := range fixtureBatches() {
		h.publish(t, b)
	}
	return h
}

func TestAPIQueryShapes(t *testing.T) {
	h := startAPI(t, nil, nil)
	ts150 := secs(150 * time.Second)
	tests := []struct {
		name   string
		path   string
		params url.Values
		want   string
	}{
		{"vector", "/api/v1/query", url.Values{"query": {`temp_celsius{resource="a"}`}},
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"temp_celsius","resource":"a","site":"lab","tenant":"acme"},"value":[` + ts150 + `,"30"]}]}}`},
		{"vector at a fractional time", "/api/v1/query", url.Values{"query": {`temp_celsius{resource="b"}`}, "time": {secs(150*time.Second) + ".5"}},
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"temp_celsius","resource":"b","site":"lab","tenant":"acme"},"value":[` + ts150 + `.500,"5"]}]}}`},
		{"rfc3339 time", "/api/v1/query", url.Values{"query": {`sum(temp_celsius)`}, "time": {base.Add(150 * time.Second).UTC().Format(time.RFC3339)}},
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[` + ts150 + `,"35"]}]}}`},
		{"scalar", "/api/v1/query", url.Values{"query": {`1e-7`}},
			`{"status":"success","data":{"resultType":"scalar","result":[` + ts150 + `,"0.0000001"]}}`},
		{"string", "/api/v1/query", url.Values{"query": {`"a<b"`}},
			`{"status":"success","data":{"resultType":"string","result":[` + ts150 + `,"a\u003cb"]}}`},
		// The head returns series in creation order, as Prometheus does.
		{"odd values", "/api/v1/query", url.Values{"query": {`odd_value`}, "time": {secs(0)}},
			`{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"odd_value","kind":"nan","tenant":"acme"},"value":[` + secs(0) + `,"NaN"]},` +
				`{"metric":{"__name__":"odd_value","kind":"inf","tenant":"acme"},"value":[` + secs(0) + `,"+Inf"]},` +
				`{"metric":{"__name__":"odd_value","kind":"neginf","tenant":"acme"},"value":[` + secs(0) + `,"-Inf"]},` +
				`{"metric":{"__name__":"odd_value","kind":"small","tenant":"acme"},"value":[` + secs(0) + `,"1e-07"]},` +
				`{"metric":{"__name__":"odd_value","kind":"html","note":"<b>&\"x\"\\","tenant":"acme"},"value":[` + secs(0) + `,"1"]}]}}`},
		{"matrix", "/api/v1/query_range", url.Values{"query": {`temp_celsius{resource="a"} * 2`}, "start": {secs(0)}, "end": {secs(time.Minute)}, "step": {"30s"}},
			`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"resource":"a","site":"lab","tenant":"acme"},"values":[[` +
				secs(0) + `,"40"],[` + secs(30*time.Second) + `,"44"],[` + secs(time.Minute) + `,"48"]]}]}}`},
		{"range vector", "/api/v1/query", url.Values{"query": {`temp_celsius{resource="a"}[31s]`}, "time": {secs(30 * time.Second)}},
			`{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"temp_celsius","resource":"a","site":"lab","tenant":"acme"},"values":[[` +
				secs(0) + `,"20"],[` + secs(15*time.Second) + `,"21"],[` + secs(30*time.Second) + `,"22"]]}]}}`},
		{"empty vector", "/api/v1/query", url.Values{"query": {`nothing_here`}},
			`{"status":"success","data":{"resultType":"vector","result":[]}}`},
		{"limit", "/api/v1/query", url.Values{"query": {`sort(temp_celsius)`}, "limit": {"1"}},
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"temp_celsius","resource":"b","site":"lab","tenant":"acme"},"value":[` + ts150 + `,"5"]}]},"warnings":["results truncated due to limit"]}`},
		{"series", "/api/v1/series", url.Values{"match[]": {`temp_celsius`, `odd_value{kind="inf"}`}},
			`{"status":"success","data":[{"__name__":"odd_value","kind":"inf","tenant":"acme"},{"__name__":"temp_celsius","resource":"a","site":"lab","tenant":"acme"},{"__name__":"temp_celsius","resource":"b","site":"lab","tenant":"acme"}]}`},
		{"labels", "/api/v1/labels", nil,
			`{"status":"success","data":["__name__","kind","note","resource","site","tenant"]}`},
		{"labels matching", "/api/v1/labels", url.Values{"match[]": {`odd_value`}},
			`{"status":"success","data":["__name__","kind","note","tenant"]}`},
		{"label values", "/api/v1/label/resource/values", nil,
			`{"status":"success","data":["a","b"]}`},
		{"metric names", "/api/v1/label/__name__/values", nil,
			`{"status":"success","data":["odd_value","temp_celsius"]}`},
		{"label values escaped name", "/api/v1/label/U__kind/values", url.Values{"match[]": {`odd_value{kind=~"n.*"}`}},
			`{"status":"success","data":["nan","neginf"]}`},
		{"metadata", "/api/v1/metadata", nil,
			`{"status":"success","data":{"temp_celsius":[{"type":"gauge","help":"Temperature.","unit":"celsius"}]}}`},
		{"metadata of a metric", "/api/v1/metadata", url.Values{"metric": {"odd_value"}},
			`{"status":"success","data":{}}`},
		{"exemplars", "/api/v1/query_exemplars", url.Values{"query": {"temp_celsius"}},
			`{"status":"success","data":[]}`},
		{"format query", "/api/v1/format_query", url.Values{"query": {`sum(rate(x[5m]))by(a)`}},
			`{"status":"success","data":"sum by (a) (rate(x[5m]))"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := h.get(t, "acme", tt.path, tt.params)
			require.Equal(t, 200, code, body)
			require.Equal(t, tt.want, body)
			if strings.HasPrefix(tt.path, "/api/v1/label/") || tt.path == "/api/v1/metadata" {
				return // GET only, as in Prometheus
			}
			code, body = h.post(t, "acme", tt.path, tt.params)
			require.Equal(t, 200, code, body)
			require.Equal(t, tt.want, body, "POST form")
		})
	}
}

func TestAPIErrors(t *testing.T) {
	h := startAPI(t, nil, nil)
	tests := []struct {
		name     string
		method   string
		path     string
		params   url.Values
		wantCode int
		wantType string
		wantErr  string
	}{
		{"no query", "GET", "/api/v1/query", nil, 400, "bad_data", `invalid parameter "query": unknown position: parse error: no expression found in input`},
		{"parse error", "GET", "/api/v1/query", url.Values{"query": {"sum("}}, 400, "bad_data", `invalid parameter "query": 1:5: parse error: unclosed left parenthesis`},
		{"bad time", "GET", "/api/v1/query", url.Values{"query": {"1"}, "time": {"abc"}}, 400, "bad_data", `invalid parameter "time": invalid time value for 'time': cannot parse "abc" to a valid timestamp`},
		{"bad timeout", "GET", "/api/v1/query", url.Values{"query": {"1"}, "timeout": {"x"}}, 400, "bad_data", `invalid parameter "timeout": cannot parse "x" to a valid duration`},
		{"bad limit", "GET", "/api/v1/query", url.Values{"query": {"1"}, "limit": {"-1"}}, 400, "bad_data", `invalid parameter "limit": limit must be non-negative`},
		{"bad lookback", "GET", "/api/v1/query", url.Values{"query": {"1"}, "lookback_delta": {"x"}}, 400, "bad_data", `error parsing lookback delta duration: cannot parse "x" to a valid duration`},
		{"execution", "GET", "/api/v1/query", url.Values{"query": {`label_replace(temp_celsius, "resource", "x", "", "")`}}, 422, "execution", "vector cannot contain metrics with the same labelset"},
		{"timeout", "GET", "/api/v1/query", url.Values{"query": {"count(count_over_time(temp_celsius[1h:1ms]))"}, "timeout": {"0.05"}}, 503, "timeout", "query timed out"},
		{"range without start", "GET", "/api/v1/query_range", url.Values{"query": {"1"}, "end": {"1"}, "step": {"1"}}, 400, "bad_data", `invalid parameter "start": cannot parse "" to a valid timestamp`},
		{"range end before start", "GET", "/api/v1/query_range", url.Values{"query": {"1"}, "start": {"10"}, "end": {"1"}, "step": {"1"}}, 400, "bad_data", `invalid parameter "end": end timestamp must not be before start time`},
		{"range zero step", "POST", "/api/v1/query_range", url.Values{"query": {"1"}, "start": {"1"}, "end": {"10"}, "step": {"0"}}, 400, "bad_data", `invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`},
		{"range too many points", "GET", "/api/v1/query_range", url.Values{"query": {"1"}, "start": {"0"}, "end": {"20000"}, "step": {"1"}}, 400, "bad_data", "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"},
		{"series without match", "GET", "/api/v1/series", nil, 400, "bad_data", "no match[] parameter provided"},
		{"series empty matcher", "GET", "/api/v1/series", url.Values{"match[]": {`{a=""}`}}, 400, "bad_data", `invalid parameter "match[]": match[] must contain at least one non-empty matcher`},
		{"labels bad matcher", "POST", "/api/v1/labels", url.Values{"match[]": {`{`}}, 400, "bad_data", "1:2: parse error: unexpected end of input inside braces"},
		{"label values bad name", "GET", "/api/v1/label/U__%ff/values", nil, 400, "bad_data", `invalid label name: `},
		{"metadata bad limit", "GET", "/api/v1/metadata", url.Values{"limit": {"x"}}, 400, "bad_data", "limit must be a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				code int
				body string
			)
			if tt.method == "POST" {
				code, body = h.post(t, "acme", tt.path, tt.params)
			} else {
				code, body = h.get(t, "acme", tt.path, tt.params)
			}
			require.Equal(t, tt.wantCode, code, body)
			var resp struct {
				Status    string `json:"status"`
				ErrorType string `json:"errorType"`
				Error     string `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &resp))
			require.Equal(t, "error", resp.Status)
			require.Equal(t, tt.wantType, resp.ErrorType)
			require.Contains(t, resp.Error, tt.wantErr)
		})
	}
	code, _ := send(t, mustRequest(t, http.MethodDelete, h.url+"/api/v1/query"))
	require.Equal(t, http.StatusMethodNotAllowed, code)
}

func mustRequest(t *testing.T, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	require.NoError(t, err)
	return req
}

// TestTenantIsolation asks, as acme, everything that could reveal
// globex's series: a globex label, value, metric name or metadata must
// never appear in an answer.
func TestTenantIsolation(t *testing.T) {
	h := startAPI(t, nil, nil)
	tests := []struct {
		path   string
		params url.Values
	}{
		{"/api/v1/query", url.Values{"query": {`{__name__=~".+"}`}}},
		{"/api/v1/query", url.Values{"query": {`{tenant="globex"}`}}},
		{"/api/v1/query", url.Values{"query": {`{tenant=~".*", __name__=~".+"}`}}},
		{"/api/v1/query", url.Values{"query": {`{tenant!="acme", __name__=~".+"}`}}},
		{"/api/v1/query", url.Values{"query": {`temp_celsius{resource="secret"} or globex_only_metric`}}},
		{"/api/v1/query", url.Values{"query": {`max_over_time(temp_celsius{tenant="globex"}[10m:1m] offset -1m)`}}},
		{"/api/v1/query", url.Values{"query": {`count by (tenant, resource) ({__name__=~".+"} @ end())`}}},
		{"/api/v1/query", url.Values{"query": {`label_replace(vector(1), "x", "y", "", "") + on() group_left(resource) temp_celsius{tenant="globex", resource="secret"}`}}},
		{"/api/v1/query_range", url.Values{"query": {`{__name__=~".+"}`}, "start": {secs(0)}, "end": {secs(10 * time.Minute)}, "step": {"15s"}}},
		{"/api/v1/series", url.Values{"match[]": {`{tenant="globex"}`}}},
		{"/api/v1/series", url.Values{"match[]": {`{__name__=~".+"}`, `{only_globex="yes"}`}}},
		{"/api/v1/labels", nil},
		{"/api/v1/labels", url.Values{"match[]": {`{tenant="globex"}`}}},
		{"/api/v1/label/tenant/values", nil},
		{"/api/v1/label/resource/values", url.Values{"match[]": {`{tenant="globex"}`}}},
		{"/api/v1/label/__name__/values", nil},
		{"/api/v1/label/only_globex/values", nil},
		{"/api/v1/metadata", nil},
		{"/api/v1/metadata", url.Values{"metric": {"temp_celsius"}}},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.params.Encode(), func(t *testing.T) {
			code, body := h.get(t, "acme", tt.path, tt.params)
			require.Equal(t, 200, code, body)
			for _, leak := range []string{"globex", "secret", "only_globex", "Hidden", `"99"`, `"hq"`} {
				require.NotContains(t, body, leak)
			}
		})
	}
	// The other way round, globex sees only its own.
	code, body := h.get(t, "globex", "/api/v1/label/tenant/values", nil)
	require.Equal(t, 200, code)
	require.Equal(t, `{"status":"success","data":["globex"]}`, body)
	code, body = h.get(t, "globex", "/api/v1/query", url.Values{"query": {`count({__name__=~".+"})`}})
	require.Equal(t, 200, code)
	require.Contains(t, body, `"2"]`)
	// A tenant without data sees nothing at all.
	code, body = h.get(t, "initech", "/api/v1/label/__name__/values", nil)
	require.Equal(t, 200, code)
	require.Equal(t, `{"status":"success","data":[]}`, body)
}

func TestAPIAuth(t *testing.T) {
	reg, err := registry.Open(filepath.Join("testdata", "registry.yaml"), registry.Options{})
	require.NoError(t, err)
	query := url.Values{"query": {`count({__name__=~".+"})`}}
	tests := []struct {
		name       string
		mod        func(*Config)
		verifier   verifier
		user, pass string
		header     string
		wantCode   int
		wantTenant string // of a 200: whose series were counted
		wantErr    string
	}{
		{name: "nothing", wantCode: 401, wantErr: "no tenant: send a X-Scope-OrgID header"},
		{name: "nothing, with registry", verifier: reg, wantCode: 401, wantErr: "no tenant: send a X-Scope-OrgID header or probe credentials (HTTP Basic)"},
		{name: "header", header: "acme", wantCode: 200, wantTenant: "acme"},
		{name: "bad header", header: "a b", wantCode: 401, wantErr: "invalid tenant in X-Scope-OrgID"},
		{name: "header off", mod: func(c *Config) { c.API.TenantHeader = "" }, header: "acme", wantCode: 401, wantErr: "no tenant: configure api.default-tenant, api.tenant-header or api.auth.registry"},
		{name: "default tenant", mod: func(c *Config) { c.API.DefaultTenant = "globex" }, wantCode: 200, wantTenant: "globex"},
		{name: "header beats default", mod: func(c *Config) { c.API.DefaultTenant = "globex" }, header: "acme", wantCode: 200, wantTenant: "acme"},
		{name: "credentials", verifier: reg, user: "probe-one", pass: "probe-one-secret", wantCode: 200, wantTenant: "acme"},
		{name: "credentials by id", verifier: reg, user: "2", pass: "probe-two-secret", wantCode: 200, wantTenant: "globex"},
		{name: "wrong secret", verifier: reg, user: "probe-one", pass: "nope", wantCode: 401, wantErr: "invalid credentials"},
		{name: "credentials and same header", verifier: reg, user: "probe-one", pass: "probe-one-secret", header: "acme", wantCode: 200, wantTenant: "acme"},
		{name: "credentials and other header", verifier: reg, user: "probe-one", pass: "probe-one-secret", header: "globex", wantCode: 403, wantErr: `X-Scope-OrgID "globex" is not the tenant of the credentials`},
		{name: "credentials without registry are ignored", user: "probe-one", pass: "x", header: "globex", wantCode: 200, wantTenant: "globex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startAPI(t, tt.mod, tt.verifier)
			req := mustRequest(t, http.MethodGet, h.url+"/api/v1/query?"+query.Encode())
			if tt.header != "" {
				req.Header.Set("X-Scope-OrgID", tt.header)
			}
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			code, body := send(t, req)
			require.Equal(t, tt.wantCode, code, body)
			if tt.wantCode != 200 {
				var resp struct{ Status, ErrorType, Error string }
				require.NoError(t, json.Unmarshal([]byte(body), &resp))
				require.Equal(t, "error", resp.Status)
				require.Equal(t, map[int]string{401: "unauthorized", 403: "forbidden"}[tt.wantCode], resp.ErrorType)
				require.Contains(t, resp.Error, tt.wantErr)
				return
			}
			want := map[string]string{"acme": "7", "globex": "2"}[tt.wantTenant]
			require.Contains(t, body, fmt.Sprintf(`,"%s"]`, want))
		})
	}
	// Build info needs no tenant: it reveals no data.
	h := startAPI(t, nil, reg)
	code, body := send(t, mustRequest(t, http.MethodGet, h.url+"/api/v1/status/buildinfo"))
	require.Equal(t, 200, code)
	var bi struct {
		Status string
		Data   buildInfo
	}
	require.NoError(t, json.Unmarshal([]byte(body), &bi))
	require.Equal(t, "tmaflow", bi.Data.Application)
	require.Regexp(t, `^3\.\d+\.\d+$`, bi.Data.Version)
	require.Equal(t, 1.0, gathered(t, h.reg, "tmaflow_persister_api_requests_total", map[string]string{"handler": "buildinfo", "code": "200"}))
}

func TestPrometheusRelease(t *testing.T) {
	for mod, want := range map[string]string{
		"v0.315.0":         "3.15.0",
		"v0.300.1":         "3.0.1",
		"v0.316.2-rc.0":    "3.16.2",
		"v2.55.1+software": "fallback",
		"v0.55.0":          "fallback",
		"(devel)":          "fallback",
		"v0.3xx.0":         "fallback",
		"v0.315":           "fallback",
	} {
		require.Equal(t, want, prometheusRelease(mod, "fallback"), mod)
	}
}

// TestRestartKeepsDataAndMetadata stops the service and starts another on
// the same directory: the samples come back from the WAL, the metric
// metadata from its file.
func TestRestartKeepsDataAndMetadata(t *testing.T) {
	cfg := testConfig(t)
	h := start(t, cfg, Options{}, nil)
	s := at(series("temp_celsius", "resource", "a"), 0*time.Second, 21)
	s.Metadata = &samples.Metadata{Type: samples.Histogram, Help: "Temp."}
	s2 := at(series("req_duration_seconds_bucket", "le", "+Inf"), 0*time.Second, 3)
	s2.Metadata = &samples.Metadata{Type: samples.Histogram, Unit: "seconds", Help: "Latency."}
	h.publish(t, batch("acme", s, s2))
	h.stop(t)

	h2 := start(t, cfg, Options{Now: func() time.Time { return base.Add(time.Minute) }}, nil)
	code, body := h2.get(t, "acme", "/api/v1/query", url.Values{"query": {"temp_celsius"}})
	require.Equal(t, 200, code)
	require.Contains(t, body, `"21"]`)
	code, body = h2.get(t, "acme", "/api/v1/metadata", url.Values{"metric": {"req_duration_seconds"}})
	require.Equal(t, 200, code)
	require.Equal(t, `{"status":"success","data":{"req_duration_seconds":[{"type":"histogram","help":"Latency.","unit":"seconds"}]}}`, body)
	code, body = h2.get(t, "globex", "/api/v1/metadata", nil)
	require.Equal(t, 200, code)
	require.Equal(t, `{"status":"success","data":{}}`, body)
	require.NoError(t, h2.svc.Reload(), "no registry: nothing to reload")
}

func TestReloadRegistry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.yaml")
	orig, err := os.ReadFile(filepath.Join("testdata", "registry.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, orig, 0o600))
	cfg := testConfig(t)
	cfg.API.AuthRegistry = path
	svc, err := New(cfg, Options{Subscriber: gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{}), Publisher: &fakePublisher{}})
	require.NoError(t, err)
	defer func() { require.NoError(t, svc.Close()) }()
	require.NoError(t, os.WriteFile(path, []byte("probes: [\n"), 0o600))
	require.Error(t, svc.Reload())
	p, ok := svc.verifier.Verify("probe-one", "probe-one-secret")
	require.True(t, ok, "the previous registry stays in force")
	require.Equal(t, "acme", p.Tenant)
}
