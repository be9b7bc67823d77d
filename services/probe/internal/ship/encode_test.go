package ship

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

func series(name string, labels []string, smp ...samples.Sample) samples.Series {
	ls := []samples.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(labels); i += 2 {
		ls = append(ls, samples.Label{Name: labels[i], Value: labels[i+1]})
	}
	return samples.Series{Labels: ls, Samples: smp}
}

// TestRemoteWriteDecodedByPrometheus: Prometheus's own generated types
// decode what EncodeWriteRequest wrote.
func TestRemoteWriteDecodedByPrometheus(t *testing.T) {
	in := []samples.Series{
		series("node_load1", []string{"instance", "a"}, samples.Sample{TimestampMs: 2000, Value: 0.5}),
		series("node_cpu_seconds_total", []string{"cpu", "0", "mode", "idle"}, samples.Sample{TimestampMs: 1000, Value: 12.25}),
		// The same series again, older: merged and sorted.
		series("node_load1", []string{"instance", "a"}, samples.Sample{TimestampMs: 1000, Value: math.Inf(1)}),
	}
	var req prompb.WriteRequest
	require.NoError(t, req.Unmarshal(EncodeWriteRequest(in)))
	require.Len(t, req.Timeseries, 2)
	require.Equal(t, []prompb.Label{{Name: "__name__", Value: "node_load1"}, {Name: "instance", Value: "a"}}, req.Timeseries[0].Labels)
	require.Equal(t, []prompb.Sample{{Value: math.Inf(1), Timestamp: 1000}, {Value: 0.5, Timestamp: 2000}}, req.Timeseries[0].Samples)
	require.Equal(t, []prompb.Sample{{Value: 12.25, Timestamp: 1000}}, req.Timeseries[1].Samples)
	require.Equal(t, "mode", req.Timeseries[1].Labels[2].Name)
}

func TestRemoteWriteRequest(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       func(url string) RemoteWriteConfig
		status    int
		wantAuth  string
		permanent bool
		wantErr   bool
	}{
		{name: "basic auth", status: 204, wantAuth: "Basic dTpw", cfg: func(u string) RemoteWriteConfig {
			return RemoteWriteConfig{HTTPConfig{URL: u, Username: "u", Password: "p"}}
		}},
		{name: "bearer", status: 200, wantAuth: "Bearer 7:s3cret", cfg: func(u string) RemoteWriteConfig {
			return RemoteWriteConfig{HTTPConfig{URL: u, BearerToken: "7:s3cret"}}
		}},
		{name: "400 is permanent", status: 400, wantErr: true, permanent: true, cfg: func(u string) RemoteWriteConfig {
			return RemoteWriteConfig{HTTPConfig{URL: u}}
		}},
		{name: "503 is retried", status: 503, wantErr: true, cfg: func(u string) RemoteWriteConfig {
			return RemoteWriteConfig{HTTPConfig{URL: u}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got prompb.WriteRequest
			var auth string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				auth = r.Header.Get("Authorization")
				require.Equal(t, "snappy", r.Header.Get("Content-Encoding"))
				require.Equal(t, "0.1.0", r.Header.Get("X-Prometheus-Remote-Write-Version"))
				b, _ := io.ReadAll(r.Body)
				raw, err := snappy.Decode(nil, b)
				require.NoError(t, err)
				require.NoError(t, got.Unmarshal(raw))
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			o, err := NewRemoteWrite(tc.cfg(srv.URL))
			require.NoError(t, err)
			err = o.Send(context.Background(), 0, []samples.Series{series("m", nil, samples.Sample{TimestampMs: 5, Value: 1})})
			require.Equal(t, tc.wantErr, err != nil, err)
			require.Equal(t, tc.permanent, IsPermanent(err))
			require.Equal(t, tc.wantAuth, auth)
			require.Len(t, got.Timeseries, 1)
		})
	}
}

// TestTMAMessagesDecode: the monitor's decoder (pkg/tma, which validates
// against the TMA schema) takes what the TMA output posts.
func TestTMAMessagesDecode(t *testing.T) {
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	other := int64(9)
	unmapped := prometheus.NewCounter(prometheus.CounterOpts{Name: "u"})
	o, err := NewTMA(TMAConfig{
		HTTPConfig: HTTPConfig{URL: srv.URL}, ProbeID: 3, ResourceID: 8,
		Mappings: []TMAMapping{
			{Metric: "node_load1", DescriptionID: 1},
			{Metric: "node_cpu_seconds_total", Labels: map[string]string{"mode": "idle"}, DescriptionID: 2},
			{Metric: "node_hwmon_temp_celsius", DescriptionID: 3, ResourceID: &other},
		},
	}, unmapped, func() time.Time { return time.UnixMilli(99_000) })
	require.NoError(t, err)
	in := []samples.Series{
		series("node_load1", nil, samples.Sample{TimestampMs: 2000, Value: 0.5}),
		series("node_cpu_seconds_total", []string{"mode", "idle"}, samples.Sample{TimestampMs: 1000, Value: 7}),
		series("node_cpu_seconds_total", []string{"mode", "user"}, samples.Sample{TimestampMs: 1000, Value: 1}),
		series("node_load1", nil, samples.Sample{TimestampMs: 1000, Value: 0.25}),
		series("node_hwmon_temp_celsius", nil, samples.Sample{TimestampMs: 1000, Value: 40}),
	}
	require.NoError(t, o.Send(context.Background(), 42, in))
	msgs, err := tma.Decode(body)
	require.NoError(t, err)
	for i := range msgs {
		msgs[i].Raw = nil
	}
	require.Equal(t, []tma.Message{
		{ProbeID: 3, ResourceID: 8, MessageID: 42000, SentTime: 99_000, Data: []tma.Data{
			{DescriptionID: 1, Type: tma.Measurement, Observations: []tma.Observation{{Time: 1000, Value: 0.25}, {Time: 2000, Value: 0.5}}},
			{DescriptionID: 2, Type: tma.Measurement, Observations: []tma.Observation{{Time: 1000, Value: 7}}},
		}},
		{ProbeID: 3, ResourceID: 9, MessageID: 42001, SentTime: 99_000, Data: []tma.Data{
			{DescriptionID: 3, Type: tma.Measurement, Observations: []tma.Observation{{Time: 1000, Value: 40}}},
		}},
	}, msgs)
	require.Equal(t, 1.0, testutilValue(t, unmapped))
	require.ErrorIs(t, o.Send(context.Background(), 43, in[2:3]), ErrNothingToSend)
	var raw []map[string]any
	require.NoError(t, json.Unmarshal(body, &raw))
}

func testutilValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	return mfs[0].Metric[0].Counter.GetValue()
}

// TestEncodeTextParses: the MQTT payload parses back with Prometheus's
// text parser, timestamps and escapes intact.
func TestEncodeTextParses(t *testing.T) {
	in := []samples.Series{
		series("a_total", []string{"path", `C:\x "q"` + "\n"}, samples.Sample{TimestampMs: 1700000000123, Value: 3}),
		series("b", nil, samples.Sample{TimestampMs: 1700000000456, Value: math.NaN()}),
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(EncodeText(in)))
	require.NoError(t, err)
	require.Equal(t, `C:\x "q"`+"\n", fams["a_total"].Metric[0].Label[0].GetValue())
	require.Equal(t, int64(1700000000123), fams["a_total"].Metric[0].GetTimestampMs())
	require.True(t, math.IsNaN(fams["b"].Metric[0].Untyped.GetValue()))
}
