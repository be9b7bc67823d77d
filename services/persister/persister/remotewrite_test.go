package persister

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// receiver is a remote-write endpoint that decodes what it gets and
// answers from a script of status codes (then 204).
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   []int
	header   http.Header // of the script's answers, e.g. Retry-After
	requests []*http.Request
	writes   []*prompb.WriteRequest
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script, header: http.Header{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			http.Error(w, "snappy: "+err.Error(), http.StatusBadRequest)
			return
		}
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			http.Error(w, "proto: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests = append(r.requests, req)
		code := http.StatusNoContent
		if len(r.script) > 0 {
			code, r.script = r.script[0], r.script[1:]
		}
		if code/100 == 2 {
			r.writes = append(r.writes, &wr)
		} else {
			for k, v := range r.header {
				w.Header()[k] = v
			}
		}
		r.mu.Unlock()
		if code/100 != 2 {
			http.Error(w, "scripted failure", code)
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) accepted() []*prompb.WriteRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*prompb.WriteRequest(nil), r.writes...)
}

func (r *receiver) calls() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*http.Request(nil), r.requests...)
}

func newTestWriter(t *testing.T, cfg RemoteWriteConfig) (*remoteWriter, *[]time.Duration) {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 100*time.Millisecond, 400*time.Millisecond
	}
	w, err := newRemoteWriter(cfg, nil, newRemoteWriteMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	var waits []time.Duration
	w.sleep = func(ctx context.Context, d time.Duration) bool {
		waits = append(waits, d)
		return ctx.Err() == nil
	}
	return w, &waits
}

func batchMessage(ctx context.Context, b *samples.Batch) *message.Message {
	msg := message.NewMessage("m", samples.Encode(nil, b))
	msg.SetContext(ctx)
	return msg
}

func TestRemoteWriteRequest(t *testing.T) {
	r1, r2 := newReceiver(t), newReceiver(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600))
	w, _ := newTestWriter(t, RemoteWriteConfig{URLs: []string{r1.srv.URL + "/api/v1/write", r2.srv.URL}, BearerTokenFile: tokenFile, TenantHeader: "X-Scope-OrgID"})

	s := at(series("temp_celsius", "resource", "a", "empty", ""), 0*time.Second, 1.5, 15*time.Second, math.Inf(1))
	s.Metadata = &samples.Metadata{Type: samples.Gauge, Unit: "celsius", Help: "Temperature."}
	b := batch("acme", s, at(series("bad", "tenant", "evil"), 0*time.Second, 1))
	require.NoError(t, handleOne(w, batchMessage(context.Background(), b)))

	for _, r := range []*receiver{r1, r2} {
		calls := r.calls()
		require.Len(t, calls, 1)
		h := calls[0].Header
		require.Equal(t, "snappy", h.Get("Content-Encoding"))
		require.Equal(t, "application/x-protobuf", h.Get("Content-Type"))
		require.Equal(t, "0.1.0", h.Get("X-Prometheus-Remote-Write-Version"))
		require.Equal(t, "tmaflow-persister", h.Get("User-Agent"))
		require.Equal(t, "Bearer s3cret", h.Get("Authorization"))
		require.Equal(t, "acme", h.Get("X-Scope-OrgID"))
		wr := r.accepted()[0]
		// The stored label set: empty label dropped, tenant added; the
		// series of another tenant left out.
		require.Equal(t, []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "temp_celsius"}, {Name: "resource", Value: "a"}, {Name: "tenant", Value: "acme"}},
			Samples: []prompb.Sample{{Timestamp: ms(0), Value: 1.5}, {Timestamp: ms(15 * time.Second), Value: math.Inf(1)}},
		}}, wr.Timeseries)
		require.Equal(t, []prompb.MetricMetadata{{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "temp_celsius", Help: "Temperature.", Unit: "celsius"}}, wr.Metadata)
	}
}

func TestRemoteWriteRetries(t *testing.T) {
	tests := []struct {
		name       string
		script     []int
		retryAfter string
		wantWaits  []time.Duration
		wantErr    string // permanent
		wantCalls  int
	}{
		{name: "ok", script: []int{200}, wantCalls: 1},
		{name: "5xx then ok, backing off", script: []int{500, 503, 502, 204}, wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}, wantCalls: 4},
		{name: "backoff capped", script: []int{500, 500, 500, 500, 204}, wantWaits: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 400 * time.Millisecond}, wantCalls: 5},
		{name: "429 with Retry-After", script: []int{429, 200}, retryAfter: "3", wantWaits: []time.Duration{3 * time.Second}, wantCalls: 2},
		{name: "Retry-After shorter than backoff", script: []int{503, 200}, retryAfter: "0", wantWaits: []time.Duration{100 * time.Millisecond}, wantCalls: 2},
		{name: "400 dead-letters", script: []int{400}, wantErr: "400 Bad Request: scripted failure", wantCalls: 1},
		{name: "413 dead-letters", script: []int{500, 413}, wantErr: "413 Request Entity Too Large", wantWaits: []time.Duration{100 * time.Millisecond}, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t, tt.script...)
			if tt.retryAfter != "" {
				r.header.Set("Retry-After", tt.retryAfter)
			}
			w, waits := newTestWriter(t, RemoteWriteConfig{URLs: []string{r.srv.URL}})
			err := handleOne(w, batchMessage(context.Background(), batch("acme", at(series("x"), 0*time.Second, 1))))
			require.Len(t, r.calls(), tt.wantCalls)
			require.Equal(t, tt.wantWaits, *waits)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Len(t, r.accepted(), 1)
				return
			}
			require.True(t, bus.IsPermanent(err))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// TestRemoteWriteRetryOnlyFailing resends only to the endpoint that failed.
func TestRemoteWriteRetryOnlyFailing(t *testing.T) {
	ok, flaky := newReceiver(t), newReceiver(t, 503, 503)
	w, _ := newTestWriter(t, RemoteWriteConfig{URLs: []string{ok.srv.URL, flaky.srv.URL}})
	require.NoError(t, handleOne(w, batchMessage(context.Background(), batch("acme", at(series("x"), 0*time.Second, 1)))))
	require.Len(t, ok.calls(), 1)
	require.Len(t, flaky.calls(), 3)
}

// TestRemoteWriteShutdown: a batch retried when the message context ends
// (shutdown, rebalance) is neither acknowledged nor dead-lettered.
func TestRemoteWriteShutdown(t *testing.T) {
	r := newReceiver(t, 503, 503, 503, 503, 503, 503)
	w, _ := newTestWriter(t, RemoteWriteConfig{URLs: []string{r.srv.URL}})
	w.sleep = service.Sleep
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	err := handleOne(w, batchMessage(ctx, batch("acme", at(series("x"), 0*time.Second, 1))))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, bus.IsPermanent(err))
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"5":                             5 * time.Second,
		"0.5":                           500 * time.Millisecond,
		"-1":                            0,
		"soon":                          0,
		"Fri, 01 May 2026 12:00:30 GMT": 30 * time.Second,
		"Fri, 01 May 2026 11:00:00 GMT": 0,
	} {
		require.Equal(t, want, retryAfter(in, now), in)
	}
}

// TestRemoteWriteThroughService runs both consumers: the TSDB and the
// endpoint get the batch; a batch the endpoint refuses lands in topic-dlq
// from the remote-write stage, while the TSDB stores it.
func TestRemoteWriteThroughService(t *testing.T) {
	r := newReceiver(t, 204, 400)
	cfg := testConfig(t)
	cfg.RemoteWrite.URLs = []string{r.srv.URL}
	cfg.RemoteWrite.BasicAuthUsername = "u"
	cfg.RemoteWrite.BasicAuthPassword = "p"
	h := start(t, cfg, Options{}, nil)
	h.publish(t, batch("acme", at(series("x"), 0*time.Second, 1)))
	h.publish(t, batch("acme", at(series("x"), time.Second, 2)))

	require.Len(t, r.accepted(), 1)
	user, pass, ok := r.calls()[0].BasicAuth()
	require.True(t, ok)
	require.Equal(t, []string{"u", "p"}, []string{user, pass})
	require.Len(t, stored(t, h.svc.db)[`{__name__="x", tenant="acme"}`], 2)
	dead := h.dlq.published(contract.TopicDLQ)
	require.Len(t, dead, 1)
	require.Equal(t, StageRemoteWrite, dead[0].Metadata.Get(contract.HeaderStage))
	require.Contains(t, dead[0].Metadata.Get(contract.HeaderError), "400 Bad Request")
	b, err := samples.Decode(dead[0].Payload)
	require.NoError(t, err)
	require.Equal(t, ms(time.Second), b.Series[0].Samples[0].TimestampMs, "the original batch")
	require.Equal(t, 1.0, gathered(t, h.reg, "tmaflow_persister_remote_write_samples_total", map[string]string{"outcome": "sent"}))
	require.Equal(t, 1.0, gathered(t, h.reg, "tmaflow_persister_remote_write_samples_total", map[string]string{"outcome": "rejected"}))
}

// handleOne runs the batch handler over msg alone, in msg's context.
func handleOne(w *remoteWriter, msg *message.Message) error {
	errs := w.handle(msg.Context(), []*message.Message{msg})
	if errs == nil {
		return nil
	}
	return errs[0]
}

// TestRemoteWriteBatch: the records of a batch go out in one request per
// tenant; a refused request of several records is sent again record by
// record, so only the refused record is dead-lettered.
func TestRemoteWriteBatch(t *testing.T) {
	// acme's merged request is refused, then its first record accepted
	// and its second refused; globex's request accepted.
	r := newReceiver(t, 400, 204, 400, 204)
	w, _ := newTestWriter(t, RemoteWriteConfig{URLs: []string{r.srv.URL}, TenantHeader: "X-Scope-OrgID"})
	ctx := context.Background()
	msgs := []*message.Message{
		batchMessage(ctx, batch("acme", at(series("a"), 0*time.Second, 1))),
		batchMessage(ctx, batch("globex", at(series("g"), 0*time.Second, 2))),
		batchMessage(ctx, batch("acme", at(series("b"), 0*time.Second, 3))),
		message.NewMessage("bad", []byte("not avro")),
	}
	errs := w.handle(ctx, msgs)
	require.Len(t, errs, len(msgs))
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.True(t, bus.IsPermanent(errs[2]), "%v", errs[2])
	require.ErrorContains(t, errs[2], "400 Bad Request")
	require.True(t, bus.IsPermanent(errs[3]), "undecodable")

	calls := r.calls()
	require.Len(t, calls, 4)
	for i, tenant := range []string{"acme", "acme", "acme", "globex"} {
		require.Equal(t, tenant, calls[i].Header.Get("X-Scope-OrgID"), "call %d", i)
	}
	var names []string
	for _, wr := range r.accepted() {
		for _, ts := range wr.Timeseries {
			names = append(names, ts.Labels[0].Value)
		}
	}
	require.Equal(t, []string{"a", "g"}, names)
}
