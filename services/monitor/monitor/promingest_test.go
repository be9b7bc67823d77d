package monitor

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/ingest"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

const (
	ctV1 = "application/x-protobuf"
	ctV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

// promRequest is a request to one of the Prometheus ingest paths.
type promRequest struct {
	method     string
	path       string
	header     map[string]string
	body       []byte
	user, pass string // Basic auth when user is set
}

func (h *harness) prom(t *testing.T, r promRequest) response {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, h.url+r.path, bytes.NewReader(r.body))
	require.NoError(t, err)
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// requireAnswer checks the status, headers and, for errors, that the JSON
// error body holds wantErr.
func requireAnswer(t *testing.T, resp response, code int, header map[string]string, wantErr string) {
	t.Helper()
	require.Equal(t, code, resp.code, "%s", resp.body)
	for k, v := range header {
		require.Equal(t, v, resp.header.Get(k), k)
	}
	if wantErr != "" {
		require.Contains(t, string(resp.body), wantErr)
		require.Equal(t, "application/json", resp.header.Get("Content-Type"))
	}
}

func lbls(kv ...string) []prompb.Label {
	out := make([]prompb.Label, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func slbls(kv ...string) []samples.Label {
	out := make([]samples.Label, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		out = append(out, samples.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func encodeV1(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// v2Series is a 2.0 series before symbolization.
type v2Series struct {
	labels     []string // name, value, …
	samples    []writev2.Sample
	histograms int
	exemplars  int
	typ        writev2.Metadata_MetricType
	help, unit string
}

func encodeV2(t testing.TB, series ...v2Series) []byte {
	t.Helper()
	st := writev2.NewSymbolTable()
	req := &writev2.Request{}
	for _, s := range series {
		ts := writev2.TimeSeries{Samples: s.samples}
		for _, l := range s.labels {
			ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(l))
		}
		for range s.histograms {
			ts.Histograms = append(ts.Histograms, writev2.Histogram{Timestamp: 1, Count: &writev2.Histogram_CountInt{CountInt: 1}})
		}
		for range s.exemplars {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{Value: 1, Timestamp: 1})
		}
		ts.Metadata = writev2.Metadata{Type: s.typ, HelpRef: st.Symbolize(s.help), UnitRef: st.Symbolize(s.unit)}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// decodeRecords decodes the records of every Publish to topic-samples.
func decodeRecords(t *testing.T, calls []published) (batches []*samples.Batch, keys []string, headers []map[string]string) {
	t.Helper()
	for _, c := range calls {
		require.Equal(t, contract.TopicSamples, c.topic)
		for _, m := range c.msgs {
			b, err := samples.Decode(m.Payload)
			require.NoError(t, err)
			batches = append(batches, b)
			keys = append(keys, string(bus.Key(m)))
			hs := map[string]string{}
			for k, v := range m.Metadata {
				if k != bus.MetadataKey {
					hs[k] = v
				}
			}
			headers = append(headers, hs)
		}
	}
	return batches, keys, headers
}

func TestRemoteWrite(t *testing.T) {
	v1 := encodeV1(t, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{Labels: lbls("__name__", "http_requests_total", "code", "200", "instance", "web-1:9100", "job", "web"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1000}, {Value: 2, Timestamp: 2000}}},
			{Labels: lbls("__name__", "up", "empty", "", "instance", "web-2:9100", "job", "web"), Samples: []prompb.Sample{{Value: 1, Timestamp: 2000}}},
			{Labels: lbls("__name__", "metadata_only"), Exemplars: []prompb.Exemplar{{Value: 1, Timestamp: 1}}},
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests", Help: "Requests.", Unit: "requests"}},
	})
	v2 := encodeV2(t,
		v2Series{labels: []string{"__name__", "cpu_seconds_total", "instance", "db-1", "mode", "idle"}, samples: []writev2.Sample{{Value: 10, Timestamp: 5000}}, exemplars: 2,
			typ: writev2.Metadata_METRIC_TYPE_COUNTER, help: "CPU time.", unit: "seconds"},
		v2Series{labels: []string{"__name__", "temperature", "site", "lab"}, samples: []writev2.Sample{{Value: 21.5, Timestamp: 5000}, {Value: 22, Timestamp: 6000}}},
	)
	one := func(kv ...string) []byte {
		return encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: lbls(kv...), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}}}})
	}
	histogram := encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "ok"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
		{Labels: lbls("__name__", "latency"), Histograms: []prompb.Histogram{{Timestamp: 1, Count: &prompb.Histogram_CountInt{CountInt: 1}}}},
	}})
	rawV1, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: lbls("__name__", "x"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}}}}).Marshal()
	require.NoError(t, err)
	truncated := snappy.Encode(nil, rawV1[:len(rawV1)-3])
	badRef := func() []byte {
		raw, err := (&writev2.Request{Symbols: []string{"", "__name__", "x"}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{1, 7}, Samples: []writev2.Sample{{Value: 1, Timestamp: 1}}}}}).Marshal()
		require.NoError(t, err)
		return snappy.Encode(nil, raw)
	}()
	auth := func(r promRequest) promRequest {
		r.path = RemoteWritePath
		if r.user == "" {
			r.user, r.pass = "probe-one", "probe-one-secret"
		}
		if r.header == nil {
			r.header = map[string]string{"Content-Type": ctV1, "Content-Encoding": "snappy"}
		}
		return r
	}

	tests := []struct {
		name   string
		cfg    func(*Config)
		pubErr error
		req    promRequest

		wantCode    int
		wantErr     string // part of the error message
		wantHeader  map[string]string
		wantSeries  [][]samples.Label
		wantSamples int
		wantKeys    []string
		wantTenant  string
		check       func(t *testing.T, batches []*samples.Batch)
	}{
		{
			name: "1.0", req: auth(promRequest{body: v1}),
			wantCode: 204, wantTenant: "acme", wantSamples: 3,
			wantSeries: [][]samples.Label{
				slbls("__name__", "http_requests_total", "code", "200", "instance", "web-1:9100", "job", "web"),
				slbls("__name__", "up", "instance", "web-2:9100", "job", "web"),
			},
			wantKeys: []string{"acme\x00instance=web-1:9100", "acme\x00instance=web-2:9100"},
			check: func(t *testing.T, bs []*samples.Batch) {
				require.Equal(t, &samples.Metadata{Type: samples.Counter, Help: "Requests.", Unit: "requests"}, bs[0].Series[0].Metadata)
				require.Equal(t, []samples.Sample{{TimestampMs: 1000, Value: 1}, {TimestampMs: 2000, Value: 2}}, bs[0].Series[0].Samples)
				require.Nil(t, bs[1].Series[0].Metadata)
			},
		},
		{
			name: "1.0, no content type or encoding, bearer", req: auth(promRequest{body: v1, header: map[string]string{"Authorization": "Bearer 2:probe-two-secret"}, user: "-"}),
			wantCode: 204, wantTenant: contract.DefaultTenant, wantSamples: 3,
		},
		{
			name: "2.0", req: auth(promRequest{body: v2, header: map[string]string{"Content-Type": ctV2, "Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "2.0.0"}}),
			wantCode: 204, wantTenant: "acme", wantSamples: 3,
			wantHeader: map[string]string{headerSamplesWritten: "3", headerHistogramsWritten: "0", headerExemplarsWritten: "0"},
			wantSeries: [][]samples.Label{
				slbls("__name__", "cpu_seconds_total", "instance", "db-1", "mode", "idle"),
				slbls("__name__", "temperature", "site", "lab"),
			},
			wantKeys: []string{"acme\x00instance=db-1", "acme\x00__name__=temperature"},
			check: func(t *testing.T, bs []*samples.Batch) {
				require.Equal(t, &samples.Metadata{Type: samples.Counter, Help: "CPU time.", Unit: "seconds"}, bs[0].Series[0].Metadata)
				require.Nil(t, bs[1].Series[0].Metadata)
			},
		},
		{
			name: "anonymous tenant", cfg: func(c *Config) { c.Auth.AnonymousTenant = "edge" },
			req:      promRequest{path: RemoteWritePath, body: v1, header: map[string]string{"Content-Type": ctV1}},
			wantCode: 204, wantTenant: "edge", wantSamples: 3,
		},
		{
			name: "anonymous tenant, wrong secret", cfg: func(c *Config) { c.Auth.AnonymousTenant = "edge" },
			req:      auth(promRequest{body: v1, user: "1", pass: "wrong"}),
			wantCode: 401, wantErr: "credentials",
		},
		{name: "no credentials", req: promRequest{path: RemoteWritePath, body: v1}, wantCode: 401, wantErr: "credentials"},
		{name: "bearer without secret", req: auth(promRequest{body: v1, header: map[string]string{"Authorization": "Bearer probe-one"}, user: "-"}), wantCode: 401},
		{name: "GET", req: auth(promRequest{method: http.MethodGet}), wantCode: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "json", req: auth(promRequest{body: v1, header: map[string]string{"Content-Type": "application/json"}}), wantCode: 415, wantErr: "application/x-protobuf"},
		{name: "unknown proto", req: auth(promRequest{body: v1, header: map[string]string{"Content-Type": "application/x-protobuf;proto=foo.Bar"}}), wantCode: 415, wantErr: `proto \"foo.Bar\"`},
		{name: "gzip", req: auth(promRequest{body: v1, header: map[string]string{"Content-Type": ctV1, "Content-Encoding": "gzip"}}), wantCode: 415, wantErr: "snappy"},
		{name: "not snappy", req: auth(promRequest{body: []byte("\xff\xff\xff\xff\xff\xffnot snappy")}), wantCode: 400, wantErr: "decode remote write: snappy"},
		{name: "empty body", req: auth(promRequest{}), wantCode: 400, wantErr: "decode remote write: snappy"},
		{name: "truncated protobuf", req: auth(promRequest{body: truncated}), wantCode: 400, wantErr: "decode remote write: protobuf prometheus.WriteRequest"},
		{
			name: "2.0 body sent as 1.0", req: auth(promRequest{body: v2}),
			wantCode: 400, wantErr: "no timeseries, only unknown fields; a remote write 2.0 body needs Content-Type application/x-protobuf;proto=io.prometheus.write.v2.Request",
		},
		{
			name: "1.0 body sent as 2.0", req: auth(promRequest{body: v1, header: map[string]string{"Content-Type": ctV2}}),
			wantCode: 400, wantErr: "no timeseries, only unknown fields; a remote write 1.0 body needs",
		},
		{name: "no metric name", req: auth(promRequest{body: one("job", "x")}), wantCode: 400, wantErr: `timeseries[0] {\"job\"=\"x\"}: series has no metric name (__name__)`},
		{name: "unsorted labels", req: auth(promRequest{body: one("__name__", "x", "b", "1", "a", "2")}), wantCode: 400, wantErr: `label names are not sorted: \"a\" after \"b\"`},
		{name: "repeated label", req: auth(promRequest{body: one("__name__", "x", "a", "1", "a", "2")}), wantCode: 400, wantErr: `label name \"a\" is repeated`},
		{name: "invalid label name", req: auth(promRequest{body: one("__name__", "x", "a\xff", "1")}), wantCode: 400, wantErr: `invalid label name`},
		{name: "invalid value", req: auth(promRequest{body: one("__name__", "x", "a", "\xff")}), wantCode: 400, wantErr: `label a: value is not valid UTF-8`},
		{
			name: "native histogram", req: auth(promRequest{body: histogram}),
			wantCode: 400, wantErr: `timeseries[1] {\"__name__\"=\"latency\"}: native histograms are not supported yet`,
		},
		{
			name:     "2.0 native histogram",
			req:      auth(promRequest{body: encodeV2(t, v2Series{labels: []string{"__name__", "h"}, histograms: 1}), header: map[string]string{"Content-Type": ctV2}}),
			wantCode: 400, wantErr: "native histograms are not supported yet",
			wantHeader: map[string]string{headerSamplesWritten: "0", headerHistogramsWritten: "0", headerExemplarsWritten: "0"},
		},
		{
			name:     "2.0 symbol out of range",
			req:      auth(promRequest{body: badRef, header: map[string]string{"Content-Type": ctV2}}),
			wantCode: 400, wantErr: "timeseries[0] labels_refs[1]: symbol reference 7 out of the 3 symbols",
		},
		{
			name:     "2.0 series without samples",
			req:      auth(promRequest{body: encodeV2(t, v2Series{labels: []string{"__name__", "x"}}), header: map[string]string{"Content-Type": ctV2}}),
			wantCode: 400, wantErr: "series has no samples",
		},
		{name: "body too large", cfg: func(c *Config) { c.MaxBodyBytes = 16 }, req: auth(promRequest{body: v1}), wantCode: 413, wantErr: "larger than 16 bytes"},
		{name: "decoded too large", cfg: func(c *Config) { c.MaxDecodedBytes = 16 }, req: auth(promRequest{body: v1}), wantCode: 413, wantErr: "decompressed body too large"},
		{
			name: "broker down", pubErr: errors.New("broker unreachable"), req: auth(promRequest{body: v2, header: map[string]string{"Content-Type": ctV2}}),
			wantCode: 503, wantErr: "did not acknowledge",
			wantHeader: map[string]string{"Retry-After": "1", headerSamplesWritten: "0"},
		},
		{
			name: "record too large", pubErr: bus.ErrTooLarge, req: auth(promRequest{body: v1}),
			wantCode: 413, wantErr: "larger than the broker accepts",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			pub := &fakePublisher{err: tt.pubErr}
			h := start(t, cfg, Options{Publisher: pub})
			if tt.req.user == "-" {
				tt.req.user = ""
			}
			resp := h.prom(t, tt.req)
			requireAnswer(t, resp, tt.wantCode, tt.wantHeader, tt.wantErr)
			require.Equal(t, 1.0, testutil.ToFloat64(h.svc.metrics.prom.requests.WithLabelValues(handlerRemoteWrite, itoa(tt.wantCode))))
			require.Zero(t, testutil.ToFloat64(h.svc.metrics.inflight))

			batches, keys, headers := decodeRecords(t, pub.published())
			if tt.wantCode != 204 {
				require.Empty(t, batches, "nothing may be published")
				require.Zero(t, testutil.ToFloat64(h.svc.metrics.prom.samples.WithLabelValues(samples.SourceRemoteWrite)))
				return
			}
			require.Len(t, pub.published(), 1, "one Publish call per request")
			require.Empty(t, resp.body)
			n := 0
			var series [][]samples.Label
			for i, b := range batches {
				require.Equal(t, tt.wantTenant, b.Tenant)
				require.Equal(t, samples.SourceRemoteWrite, b.Source)
				require.Equal(t, map[string]string{
					contract.HeaderTenant:     tt.wantTenant,
					contract.HeaderSource:     samples.SourceRemoteWrite,
					contract.HeaderReceivedAt: itoa(fixedNow().UnixNano()),
				}, headers[i])
				for _, s := range b.Series {
					series = append(series, s.Labels)
					n += len(s.Samples)
				}
			}
			require.Equal(t, tt.wantSamples, n)
			require.EqualValues(t, tt.wantSamples, testutil.ToFloat64(h.svc.metrics.prom.samples.WithLabelValues(samples.SourceRemoteWrite)))
			if tt.wantSeries != nil {
				require.Equal(t, tt.wantSeries, series)
			}
			if tt.wantKeys != nil {
				require.Equal(t, tt.wantKeys, keys)
			}
			if tt.check != nil {
				tt.check(t, batches)
			}
		})
	}
}

func itoa[T int | int64](i T) string { return strconv.FormatInt(int64(i), 10) }

func TestImportText(t *testing.T) {
	now := fixedNow().UnixMilli()
	promText := []byte(`# HELP jobs_done_total Jobs done.
# TYPE jobs_done_total counter
jobs_done_total{queue="a"} 3 1700000000000
jobs_done_total{queue="b"} 4
# TYPE temperature gauge
temperature 21.5
`)
	openMetrics := []byte(`# TYPE backup_bytes counter
# UNIT backup_bytes bytes
# HELP backup_bytes Bytes backed up.
backup_bytes_total{disk="sda"} 1024 1700000000.5 # {trace_id="abc"} 1 1700000000.4
backup_bytes_created{disk="sda"} 1690000000
# EOF
`)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write(promText)
	require.NoError(t, err)
	require.NoError(t, zw.Close())

	textCT := map[string]string{"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
	omCT := map[string]string{"Content-Type": "application/openmetrics-text; version=1.0.0; charset=utf-8"}
	creds := func(r promRequest) promRequest {
		r.user, r.pass = "probe-one", "probe-one-secret"
		if r.method == "" {
			r.method = http.MethodPost
		}
		return r
	}
	type series struct {
		labels  []samples.Label
		samples []samples.Sample
		meta    *samples.Metadata
	}
	tests := []struct {
		name        string
		handler     string
		req         promRequest
		wantCode    int
		wantBody    string
		wantErr     string
		wantHeader  map[string]string
		wantSeries  []series
		wantKeys    []string
		wantTenant  string
		anonymousTo string
	}{
		{
			name: "prometheus text", handler: handlerImport, req: creds(promRequest{path: ImportPath, body: promText, header: textCT}),
			wantCode: 200, wantBody: `{"status":"ok","series":3,"samples":3}`, wantTenant: "acme",
			wantSeries: []series{
				{slbls("__name__", "jobs_done_total", "queue", "a"), []samples.Sample{{TimestampMs: 1700000000000, Value: 3}}, &samples.Metadata{Type: samples.Counter, Help: "Jobs done."}},
				{slbls("__name__", "jobs_done_total", "queue", "b"), []samples.Sample{{TimestampMs: now, Value: 4}}, &samples.Metadata{Type: samples.Counter, Help: "Jobs done."}},
				{slbls("__name__", "temperature"), []samples.Sample{{TimestampMs: now, Value: 21.5}}, &samples.Metadata{Type: samples.Gauge}},
			},
			wantKeys: []string{"acme\x00__name__=jobs_done_total", "acme\x00__name__=temperature"},
		},
		{
			name: "no content type, gzip, extra labels", handler: handlerImport,
			req:      creds(promRequest{path: ImportPath + "?extra_label=site=lab&extra_label=job=import", body: gz.Bytes(), header: map[string]string{"Content-Encoding": "gzip"}}),
			wantCode: 200, wantBody: `{"status":"ok","series":3,"samples":3}`, wantTenant: "acme",
			wantKeys: []string{"acme\x00job=import"},
		},
		{
			name: "openmetrics", handler: handlerImport, req: creds(promRequest{path: ImportPath, body: openMetrics, header: omCT}),
			wantCode: 200, wantBody: `{"status":"ok","series":2,"samples":2}`, wantTenant: "acme",
			wantSeries: []series{
				{slbls("__name__", "backup_bytes_total", "disk", "sda"), []samples.Sample{{TimestampMs: 1700000000500, Value: 1024}}, &samples.Metadata{Type: samples.Counter, Unit: "bytes", Help: "Bytes backed up."}},
				{slbls("__name__", "backup_bytes_created", "disk", "sda"), []samples.Sample{{TimestampMs: now, Value: 1690000000}}, &samples.Metadata{Type: samples.Counter, Unit: "bytes", Help: "Bytes backed up."}},
			},
		},
		{
			name: "push path", handler: handlerPush, req: creds(promRequest{path: "/metrics/job/backup/instance/db%2D1/path@base64/L3Zhci9saWI", body: []byte("last_run 17\n"), header: textCT}),
			wantCode: 200, wantBody: `{"status":"ok","series":1,"samples":1}`, wantTenant: "acme",
			wantSeries: []series{{slbls("__name__", "last_run", "instance", "db-1", "job", "backup", "path", "/var/lib"), []samples.Sample{{TimestampMs: now, Value: 17}}, nil}},
			wantKeys:   []string{"acme\x00instance=db-1"},
		},
		{
			name: "push path, PUT, anonymous", handler: handlerPush, anonymousTo: "edge",
			req:      promRequest{method: http.MethodPut, path: "/metrics/job@base64/YmFja3Vw", body: []byte("last_run 17\n")},
			wantCode: 200, wantTenant: "edge",
			wantSeries: []series{{slbls("__name__", "last_run", "job", "backup"), []samples.Sample{{TimestampMs: now, Value: 17}}, nil}},
		},
		{name: "push, DELETE", handler: handlerPush, req: creds(promRequest{method: http.MethodDelete, path: "/metrics/job/x"}), wantCode: 405, wantHeader: map[string]string{"Allow": "POST, PUT"}},
		{name: "import, PUT", handler: handlerImport, req: creds(promRequest{method: http.MethodPut, path: ImportPath}), wantCode: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "push path without job value", handler: handlerPush, req: creds(promRequest{path: "/metrics/job", body: []byte("x 1\n")}), wantCode: 400, wantErr: "want /metrics/job/<job>"},
		{name: "push path, odd pairs", handler: handlerPush, req: creds(promRequest{path: "/metrics/job/x/instance", body: []byte("x 1\n")}), wantCode: 400, wantErr: "want /metrics/job/<job>"},
		{name: "push path, bad base64", handler: handlerPush, req: creds(promRequest{path: "/metrics/job/x/a@base64/!!", body: []byte("x 1\n")}), wantCode: 400, wantErr: "not base64url"},
		{name: "push path, label given twice", handler: handlerPush, req: creds(promRequest{path: "/metrics/job/x/a/1/a/2", body: []byte("x 1\n")}), wantCode: 400, wantErr: "label a given twice"},
		{
			name: "body label differs from path", handler: handlerPush, req: creds(promRequest{path: "/metrics/job/x", body: []byte("up{job=\"y\"} 1\n")}),
			wantCode: 400, wantErr: `label job=\"y\" differs from \"x\" given in the request`,
		},
		{name: "bad extra_label", handler: handlerImport, req: creds(promRequest{path: ImportPath + "?extra_label=nolabel", body: promText}), wantCode: 400, wantErr: "extra_label"},
		{
			name: "bad line", handler: handlerImport, req: creds(promRequest{path: ImportPath, body: []byte("ok 1\nbad{ 1\nalso_ok 2\n"), header: textCT}),
			wantCode: 400, wantErr: "parse prometheus text",
		},
		{
			name: "openmetrics without EOF", handler: handlerImport, req: creds(promRequest{path: ImportPath, body: []byte("x 1\n"), header: omCT}),
			wantCode: 400, wantErr: "parse openmetrics",
		},
		{
			name: "same series twice", handler: handlerImport, req: creds(promRequest{path: ImportPath, body: []byte("x 1\nx 2\n")}),
			wantCode: 400, wantErr: "two samples at timestamp",
		},
		{name: "json", handler: handlerImport, req: creds(promRequest{path: ImportPath, body: promText, header: map[string]string{"Content-Type": "application/json"}}), wantCode: 415, wantErr: "openmetrics-text"},
		{name: "protobuf exposition", handler: handlerImport, req: creds(promRequest{path: ImportPath, body: promText, header: map[string]string{"Content-Type": "application/vnd.google.protobuf"}}), wantCode: 415},
		{name: "brotli", handler: handlerImport, req: creds(promRequest{path: ImportPath, body: promText, header: map[string]string{"Content-Encoding": "br"}}), wantCode: 415, wantErr: "gzip"},
		{name: "bad gzip", handler: handlerImport, req: creds(promRequest{path: ImportPath, body: promText, header: map[string]string{"Content-Encoding": "gzip"}}), wantCode: 400, wantErr: "decode gzip body"},
		{name: "no credentials", handler: handlerPush, req: promRequest{path: "/metrics/job/x", body: promText}, wantCode: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Auth.AnonymousTenant = tt.anonymousTo
			pub := &fakePublisher{}
			h := start(t, cfg, Options{Publisher: pub})
			resp := h.prom(t, tt.req)
			requireAnswer(t, resp, tt.wantCode, tt.wantHeader, tt.wantErr)
			if tt.wantBody != "" {
				require.Equal(t, tt.wantBody, string(resp.body))
			}
			require.Equal(t, 1.0, testutil.ToFloat64(h.svc.metrics.prom.requests.WithLabelValues(tt.handler, itoa(tt.wantCode))))
			batches, keys, headers := decodeRecords(t, pub.published())
			if tt.wantCode != 200 {
				require.Empty(t, batches, "nothing may be published")
				return
			}
			var got []series
			for i, b := range batches {
				require.Equal(t, tt.wantTenant, b.Tenant)
				require.Equal(t, samples.SourceOpenMetrics, headers[i][contract.HeaderSource])
				for _, s := range b.Series {
					got = append(got, series{s.Labels, s.Samples, s.Metadata})
				}
			}
			if tt.wantSeries != nil {
				require.Equal(t, tt.wantSeries, got)
			}
			if tt.wantKeys != nil {
				require.Equal(t, tt.wantKeys, keys)
			}
		})
	}
}

// TestSampleRecordsSplit: a series group larger than a record is split
// into records of the same key, in order.
func TestSampleRecordsSplit(t *testing.T) {
	var series []samples.Series
	value := strings.Repeat("v", 1000)
	for i := range 600 {
		series = append(series, samples.Series{
			Labels:  slbls("__name__", "big", "instance", "a", "pad", value+itoa(i)),
			Samples: []samples.Sample{{TimestampMs: int64(i), Value: 1}},
		})
	}
	series = append(series, samples.Series{Labels: slbls("__name__", "small", "job", "j"), Samples: []samples.Sample{{TimestampMs: 1, Value: 1}}})
	recs := ingest.SampleRecords("t", samples.SourceRemoteWrite, time.Unix(0, 5).UnixNano(), series)
	require.Greater(t, len(recs), 2)
	var n int64
	for i, m := range recs {
		require.LessOrEqual(t, len(m.Payload), ingest.MaxRecordBytes+2048)
		b, err := samples.Decode(m.Payload)
		require.NoError(t, err)
		if i == len(recs)-1 {
			require.Equal(t, "t\x00job=j", string(bus.Key(m)))
			continue
		}
		require.Equal(t, "t\x00instance=a", string(bus.Key(m)))
		for _, s := range b.Series {
			require.Equal(t, n, s.Samples[0].TimestampMs, "series stay in order")
			n++
		}
	}
	require.EqualValues(t, 600, n)
}

func TestOverloadPrometheus(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInflight = 1
	pub := &fakePublisher{block: make(chan struct{}), entered: make(chan struct{}, 2)}
	h := start(t, cfg, Options{Publisher: pub})
	req := promRequest{path: RemoteWritePath, user: "1", pass: "probe-one-secret",
		body: encodeV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: lbls("__name__", "x"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}}}})}
	done := make(chan int)
	go func() { done <- h.prom(t, req).code }()
	<-pub.entered
	resp := h.prom(t, req)
	require.Equal(t, 429, resp.code)
	require.Equal(t, "1", resp.header.Get("Retry-After"))
	push := h.prom(t, promRequest{path: "/metrics/job/x", user: "1", pass: "probe-one-secret", body: []byte("x 1\n")})
	require.Equal(t, 429, push.code)
	close(pub.block)
	require.Equal(t, 204, <-done)
}

// TestDecodedOutlivesBuffer: the decompression buffer is reused, so
// nothing decoded may refer to it.
func TestDecodedOutlivesBuffer(t *testing.T) {
	body := func(name string) []byte {
		return encodeV1(t, &prompb.WriteRequest{
			Timeseries: []prompb.TimeSeries{{Labels: lbls("__name__", name, "job", name+"-job"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}}},
			Metadata:   []prompb.MetricMetadata{{MetricFamilyName: name, Help: name + " help"}},
		})
	}
	first, err := decodeRemoteWrite(rwV1, body("aaaaaaaa"), 1<<20)
	require.NoError(t, err)
	for range 10 {
		_, err := decodeRemoteWrite(rwV1, body("bbbbbbbb"), 1<<20)
		require.NoError(t, err)
	}
	require.Equal(t, slbls("__name__", "aaaaaaaa", "job", "aaaaaaaa-job"), first.series[0].Labels)
	require.Equal(t, "aaaaaaaa help", first.series[0].Metadata.Help)
	require.Equal(t, "aaaaaaaa help", first.families["aaaaaaaa"].Help)
}
