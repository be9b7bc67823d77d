package benchkit

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/tma"
)

func TestAppendMessageIsValidTMA(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC).UnixMilli()
	b := AppendMessage(nil, 0, 101098, 7, ts, 20, nil)
	msgs, err := tma.Decode(b)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	m := msgs[0]
	require.Equal(t, int64(101098), m.ResourceID)
	require.Equal(t, 20, m.Observations())
	events := 0
	for i, d := range m.Data {
		require.Equal(t, int64(i), d.DescriptionID)
		require.Len(t, d.Observations, 1)
		// Milliseconds, read back by magnitude.
		require.Equal(t, ts, tma.Time(d.Observations[0].Time).UnixMilli())
		require.Equal(t, SampleValue(7, i), d.Observations[0].Value)
		if d.Type == tma.Event {
			events++
		}
	}
	require.Equal(t, 4, events)
}

func TestResourceClockIncreasesPerResource(t *testing.T) {
	c := NewResourceClock(2)
	now := time.UnixMilli(1000)
	require.Equal(t, int64(1000), c.Next(0, now))
	require.Equal(t, int64(1001), c.Next(0, now), "same millisecond: one later")
	require.Equal(t, int64(1000), c.Next(1, now), "resources are independent")
	require.Equal(t, int64(5000), c.Next(0, time.UnixMilli(5000)), "follows the clock")
	require.Equal(t, int64(5001), c.Next(0, time.UnixMilli(10)), "never goes back")
}

func TestSumMetrics(t *testing.T) {
	text := `# TYPE prometheus_tsdb_head_samples_appended_total counter
prometheus_tsdb_head_samples_appended_total{type="float"} 1200
prometheus_tsdb_head_samples_appended_total{type="histogram"} 34
# TYPE tmaflow_persister_rejected_samples_total counter
tmaflow_persister_rejected_samples_total{reason="too_old"} 0
# TYPE go_goroutines gauge
go_goroutines 12
# TYPE tmaflow_bus_handler_duration_seconds histogram
tmaflow_bus_handler_duration_seconds_bucket{handler="a",le="+Inf"} 3
tmaflow_bus_handler_duration_seconds_sum{handler="a"} 0.5
tmaflow_bus_handler_duration_seconds_count{handler="a"} 3
tmaflow_bus_handler_duration_seconds_bucket{handler="b",le="+Inf"} 1
tmaflow_bus_handler_duration_seconds_sum{handler="b"} 0.25
tmaflow_bus_handler_duration_seconds_count{handler="b"} 1
`
	got, err := SumMetrics(strings.NewReader(text), "prometheus_tsdb_head_samples_appended_total", "tmaflow_persister_rejected_samples_total", "go_goroutines", "absent_total", "tmaflow_bus_handler_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{
		"prometheus_tsdb_head_samples_appended_total": 1234, "tmaflow_persister_rejected_samples_total": 0, "go_goroutines": 12,
		"tmaflow_bus_handler_duration_seconds_sum": 0.75, "tmaflow_bus_handler_duration_seconds_count": 4,
	}, got)

	_, err = SumMetrics(strings.NewReader("not { metrics"), "prometheus_tsdb_head_samples_appended_total")
	require.Error(t, err)
}

func TestGroupSeries(t *testing.T) {
	sets := []map[string]string{
		{"__name__": "b", "resource_id": "2", "tenant": "demo"},
		{"__name__": "a", "resource_id": "1", "tenant": "demo"},
		{"__name__": "a", "resource_id": "2", "tenant": "demo"},
	}
	got := GroupSeries(sets)
	require.Len(t, got, 2)
	require.Len(t, got[0], 1)
	require.Equal(t, []prompb.Label{{Name: "__name__", Value: "a"}, {Name: "resource_id", Value: "1"}, {Name: "tenant", Value: "demo"}}, got[0][0])
	require.Len(t, got[1], 2)
	require.Equal(t, "a", got[1][0][0].Value)
	require.Equal(t, "b", got[1][1][0].Value)
}

func TestParseTracesAndAttribute(t *testing.T) {
	text := `File: tmaflow
Type: cpu
-----------+-------------------------------------------------------
      10ms   internal/runtime/syscall/linux.Syscall6
             syscall.Syscall
             github.com/twmb/franz-go/pkg/kfake.(*Cluster).run
-----------+-------------------------------------------------------
     1.50s   runtime.mallocgc
             github.com/tmaflow/tmaflow/pkg/samples.Encode
             github.com/tmaflow/tmaflow/services/labeler/labeler.(*Service).publish
             github.com/ThreeDotsLabs/watermill/message.(*handler).handleMessage
-----------+-------------------------------------------------------
`
	got, err := ParseTraces(text)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, 10*time.Millisecond, got[0].CPU)
	require.Len(t, got[1].Frames, 4)
	require.Equal(t, 1500*time.Millisecond, got[1].CPU)

	require.Equal(t, "syscalls (network, disk)", Attribute(got[0].Frames, ByWork, false, "other"))
	require.Equal(t, "memory allocation + GC assist", Attribute(got[1].Frames, ByWork, false, "other"))
	require.Equal(t, "other", Attribute([]string{"main.main"}, ByWork, false, "other"))
}

// TestRemoteWrite decodes what the writers send: snappy protobuf, one
// sample per entry, each series' timestamps strictly increasing, every
// series of a group at one timestamp.
func TestRemoteWrite(t *testing.T) {
	var mu sync.Mutex
	last := map[string]int64{}
	requests, total := 0, 0
	var bad []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		raw, err := snappy.Decode(nil, body)
		require.NoError(t, err)
		var req prompb.WriteRequest
		require.NoError(t, req.Unmarshal(raw))
		mu.Lock()
		defer mu.Unlock()
		requests++
		if r.Header.Get("Content-Encoding") != "snappy" || len(req.Timeseries) != 6 {
			bad = append(bad, "request shape")
		}
		for _, ts := range req.Timeseries {
			if len(ts.Samples) != 1 {
				bad = append(bad, "samples per entry")
				continue
			}
			k := LabelsKey(ts.Labels)
			if ts.Samples[0].Timestamp <= last[k] {
				bad = append(bad, "timestamp of "+k)
			}
			last[k] = ts.Samples[0].Timestamp
			total++
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	groups := GroupSeries([]map[string]string{
		{"__name__": "a", "resource_id": "1"}, {"__name__": "b", "resource_id": "1"},
		{"__name__": "a", "resource_id": "2"}, {"__name__": "b", "resource_id": "2"},
		{"__name__": "a", "resource_id": "3"}, {"__name__": "b", "resource_id": "3"},
	})
	ctx, cancel := context.WithCancel(context.Background())
	st := &SendStats{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		RemoteWrite(ctx, WriteConfig{URL: srv.URL, Groups: groups, Writers: 2, PerRequest: 3}, st)
	}()
	require.Eventually(t, func() bool { return st.OK.Load() >= 20 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	<-done
	require.NoError(t, st.Err())
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, bad)
	require.Len(t, last, 6)
	require.Equal(t, requests*6, total)
}

func TestScrapeMatching(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `# TYPE evals counter
evals{group="a"} 3
evals{group="b"} 4
`)
	}))
	defer srv.Close()
	got, err := ScrapeMatching(context.Background(), srv.Client(), srv.URL, func(m *dto.Metric) bool {
		for _, l := range m.GetLabel() {
			if l.GetName() == "group" && l.GetValue() == "b" {
				return true
			}
		}
		return false
	}, "evals")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"evals": 4}, got)
	got, err = Scrape(context.Background(), srv.Client(), srv.URL, "evals")
	require.NoError(t, err)
	require.Equal(t, map[string]float64{"evals": 7}, got)
}

// TestSendObserve: every answer is observed, rejected ones with their
// status, and open-loop latency counts from the request's slot.
func TestSendObserve(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		time.Sleep(2 * time.Millisecond)
	}))
	defer srv.Close()
	var mu sync.Mutex
	statuses := map[int]int{}
	var minLat time.Duration = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	st := &SendStats{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Send(ctx, SendConfig{
			URL: srv.URL, Resources: []int64{1, 2}, DataItems: 3, Concurrency: 2, Rate: 200,
			Observe: func(lat time.Duration, status int) {
				mu.Lock()
				defer mu.Unlock()
				statuses[status]++
				if status == http.StatusOK {
					minLat = min(minLat, lat)
				}
			},
		}, st)
	}()
	require.Eventually(t, func() bool { return st.OK.Load() >= 20 }, 30*time.Second, 5*time.Millisecond)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, int(st.OK.Load()), statuses[http.StatusOK])
	require.Equal(t, int(st.Failed.Load()), statuses[http.StatusTooManyRequests])
	require.Positive(t, statuses[http.StatusTooManyRequests])
	require.GreaterOrEqual(t, minLat, 2*time.Millisecond, "the server's time is in every latency")
}
