package pipebench

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	kafka "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

func TestAppendMessageIsValidTMA(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC).UnixMilli()
	b := appendMessage(nil, 0, 101098, 7, ts, 20)
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
		require.Equal(t, sampleValue(7, i), d.Observations[0].Value)
		if d.Type == tma.Event {
			events++
		}
	}
	require.Equal(t, 4, events)
}

func TestResourceClockIncreasesPerResource(t *testing.T) {
	c := resourceClock{last: make([]int64, 2)}
	now := time.UnixMilli(1000)
	require.Equal(t, int64(1000), c.next(0, now))
	require.Equal(t, int64(1001), c.next(0, now), "same millisecond: one later")
	require.Equal(t, int64(1000), c.next(1, now), "resources are independent")
	require.Equal(t, int64(5000), c.next(0, time.UnixMilli(5000)), "follows the clock")
	require.Equal(t, int64(5001), c.next(0, time.UnixMilli(10)), "never goes back")
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
	got, err := sumMetrics(strings.NewReader(text), metricAppended, metricRejected, "go_goroutines", "absent_total", metricHandler)
	require.NoError(t, err)
	require.Equal(t, map[string]float64{
		metricAppended: 1234, metricRejected: 0, "go_goroutines": 12,
		metricHandler + "_sum": 0.75, metricHandler + "_count": 4,
	}, got)

	_, err = sumMetrics(strings.NewReader("not { metrics"), metricAppended)
	require.Error(t, err)
}

func TestGroupSeries(t *testing.T) {
	sets := []map[string]string{
		{"__name__": "b", "resource_id": "2", "tenant": "demo"},
		{"__name__": "a", "resource_id": "1", "tenant": "demo"},
		{"__name__": "a", "resource_id": "2", "tenant": "demo"},
	}
	got := groupSeries(sets)
	require.Len(t, got, 2)
	require.Len(t, got[0], 1)
	require.Equal(t, []prompb.Label{{Name: "__name__", Value: "a"}, {Name: "resource_id", Value: "1"}, {Name: "tenant", Value: "demo"}}, got[0][0])
	require.Len(t, got[1], 2)
	require.Equal(t, "a", got[1][0][0].Value)
	require.Equal(t, "b", got[1][1][0].Value)
}

func points(lags ...int64) []Point {
	out := make([]Point, len(lags))
	for i, l := range lags {
		out[i] = Point{
			At:     time.Duration(i) * time.Second,
			Sent:   int64(i) * 1000,
			Stored: float64(i) * 1000,
			Lags:   []int64{l, 0},
		}
	}
	return out
}

func TestSustained(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offered float64
		mutate  func([]Point)
		want    bool
	}{
		{"steady lag", 1000, nil, true},
		{"closed loop is never sustained", 0, nil, false},
		{"lag grows by more than a second of input", 1000, func(ps []Point) {
			for i := range ps {
				ps[i].Lags[1] = int64(i) * 20
			}
		}, false},
		{"stores less than accepted", 1000, func(ps []Point) {
			for i := range ps {
				ps[i].Stored = float64(i) * 900
			}
		}, false},
		{"accepts less than offered", 1500, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := points(5, 7, 3, 6, 4, 5, 7, 3, 5, 6, 4)
			if tc.mutate != nil {
				tc.mutate(ps)
			}
			m := &Measurement{Offered: tc.offered, DataItems: 20, Warmup: 2 * time.Second, Points: ps}
			require.Equal(t, tc.want, m.Sustained())
		})
	}
}

func TestMeasurementWindow(t *testing.T) {
	m := &Measurement{Warmup: 2 * time.Second, Points: points(10, 10, 0, 4, 8)}
	m.Points[4].RSS, m.Points[2].RSS, m.Points[3].RSS = 300, 100, 200
	m.Points[0].RSS = 1 // warm-up: not in the window
	require.InDelta(t, 1000, m.Stored(), 1e-9)
	require.InDelta(t, 4, m.LagSlope(), 1e-9)
	lo, hi := m.LagRange()
	require.Equal(t, []int64{0, 8}, []int64{lo, hi})
	lo, hi = m.RSSRange()
	require.Equal(t, []int64{100, 300}, []int64{lo, hi})
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
	got, err := parseTraces(text)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, 10*time.Millisecond, got[0].cpu)
	require.Len(t, got[1].frames, 4)
	require.Equal(t, 1500*time.Millisecond, got[1].cpu)

	require.Equal(t, "embedded broker (kfake)", attribute(got[0].frames, byService, true, "other"))
	require.Equal(t, "syscalls (network, disk)", attribute(got[0].frames, byWork, false, "other"))
	require.Equal(t, "labeler", attribute(got[1].frames, byService, true, "other"), "the service wins over the router that calls it")
	require.Equal(t, "memory allocation + GC assist", attribute(got[1].frames, byWork, false, "other"))
	require.Equal(t, "other", attribute([]string{"main.main"}, byWork, false, "other"))
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
			k := labelsKey(ts.Labels)
			if ts.Samples[0].Timestamp <= last[k] {
				bad = append(bad, "timestamp of "+k)
			}
			last[k] = ts.Samples[0].Timestamp
			total++
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	groups := groupSeries([]map[string]string{
		{"__name__": "a", "resource_id": "1"}, {"__name__": "b", "resource_id": "1"},
		{"__name__": "a", "resource_id": "2"}, {"__name__": "b", "resource_id": "2"},
		{"__name__": "a", "resource_id": "3"}, {"__name__": "b", "resource_id": "3"},
	})
	ctx, cancel := context.WithCancel(context.Background())
	st := &sendStats{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		remoteWrite(ctx, writeConfig{URL: srv.URL, Groups: groups, Writers: 2, PerRequest: 3}, st)
	}()
	require.Eventually(t, func() bool { return st.ok.Load() >= 20 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	<-done
	require.NoError(t, st.err())
	mu.Lock()
	defer mu.Unlock()
	require.Empty(t, bad)
	require.Len(t, last, 6)
	require.Equal(t, requests*6, total)
}

// TestLag reads the lag of a group from the embedded broker: all records
// before a commit, what is past the committed offset after.
func TestLag(t *testing.T) {
	b, err := broker.Start(broker.Config{
		ListenAddress: "127.0.0.1:0", DataDir: t.TempDir(), Retention: time.Hour,
		RetentionBytes: -1, RetentionCheckInterval: time.Hour, Partitions: 2,
	}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(b.Close)
	addr := b.Addrs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "topic-monitor", Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond}
	msgs := make([]kafka.Message, 10)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte{byte(i)}, Value: []byte("x")}
	}
	require.NoError(t, w.WriteMessages(ctx, msgs...))
	require.NoError(t, w.Close())

	c := consumer{name: "labeler", group: "g", topic: "topic-monitor"}
	l := newLagReader(addr)
	n, err := l.lag(ctx, c)
	require.NoError(t, err)
	require.Equal(t, int64(10), n)

	// Commit partition 0 to its end: what is left is partition 1's.
	ends, err := l.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{c.topic: {kafka.LastOffsetOf(0)}}})
	require.NoError(t, err)
	end0 := ends.Topics[c.topic][0].LastOffset
	res, err := l.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{
		GroupID: c.group, GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{c.topic: {{Partition: 0, Offset: end0}}},
	})
	require.NoError(t, err)
	for _, ps := range res.Topics {
		for _, p := range ps {
			require.NoError(t, p.Error)
		}
	}
	n, err = l.lag(ctx, c)
	require.NoError(t, err)
	require.Equal(t, 10-end0, n)

	lags, err := l.lags(ctx, []consumer{c, {name: "none", group: "g", topic: "topic-metrics"}})
	require.NoError(t, err)
	require.Equal(t, []int64{10 - end0, 0}, lags)
}
