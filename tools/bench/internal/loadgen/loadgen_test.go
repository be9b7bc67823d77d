package loadgen

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/tma"
)

func TestMessagesAreValidTMA(t *testing.T) {
	bodies := Messages(10, 3, 4, 20, 1, time.Unix(1_700_000_000, 0))
	require.Len(t, bodies, 10)
	seen := map[string]bool{}
	for i, b := range bodies {
		msgs, err := tma.Decode(b)
		require.NoError(t, err, string(b))
		require.Len(t, msgs, 1)
		m := msgs[0]
		require.Equal(t, int64(3), m.ProbeID)
		require.Equal(t, int64(i%4), m.ResourceID)
		require.Equal(t, int64(i), m.MessageID)
		obs := 0
		for _, d := range m.Data {
			obs += len(d.Observations)
		}
		require.Equal(t, 20, obs)
		require.False(t, seen[string(b)], "bodies must differ")
		seen[string(b)] = true
	}
	// Several observations per item.
	msgs, err := tma.Decode(Messages(1, 0, 1, 4, 5, time.Unix(1_700_000_000, 0))[0])
	require.NoError(t, err)
	require.Len(t, msgs[0].Data, 4)
	require.Len(t, msgs[0].Data[0].Observations, 5)
}

func TestRunCountsAnswers(t *testing.T) {
	var n atomic.Int64
	var mu sync.Mutex
	auth := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u, p, _ := r.BasicAuth()
		mu.Lock()
		auth[u+":"+p]++
		mu.Unlock()
		// Every third request fails.
		if n.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	res, err := Run(context.Background(), Config{
		URL: srv.URL, Concurrency: 4, Duration: 300 * time.Millisecond,
		Bodies: [][]byte{[]byte(`{}`)}, ObservationsPerBody: 20, User: "u", Password: "p",
	})
	require.NoError(t, err)
	require.Positive(t, res.Requests)
	require.Equal(t, res.Requests*20, res.Observations)
	require.Equal(t, res.Requests, res.Statuses[http.StatusOK])
	require.Equal(t, res.Failures, res.Statuses[http.StatusServiceUnavailable])
	require.InDelta(t, float64(res.Requests)/2, float64(res.Failures), float64(res.Requests)/4+2)
	require.ErrorContains(t, res.FirstError, "status 503")
	require.LessOrEqual(t, res.P50, res.P99)
	require.LessOrEqual(t, res.P99, res.Max)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"u:p": int(n.Load())}, auth)
}

func TestRunKeepsConnectionsAlive(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write([]byte(`{"accepted":1}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	res, err := Run(context.Background(), Config{
		URL: srv.URL, Concurrency: 3, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond,
		Bodies: [][]byte{[]byte(`{}`)},
	})
	require.NoError(t, err)
	require.Greater(t, res.Requests, 20)
	require.LessOrEqual(t, conns.Load(), int64(3), "one connection per worker")
}

func TestRunAtRate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n.Add(1)
	}))
	defer srv.Close()

	res, err := Run(context.Background(), Config{
		URL: srv.URL, Concurrency: 4, Duration: time.Second, Rate: 200,
		Bodies: [][]byte{[]byte(`{}`)},
	})
	require.NoError(t, err)
	require.InDelta(t, 200, res.Requests, 30)
	require.InDelta(t, 200, res.RequestsPerSecond(), 30)
}

func TestRunAtRateCountsQueueingAsLatency(t *testing.T) {
	// One worker, a 20 ms server and 100 requests/s scheduled: requests
	// queue behind each other, and latency from the schedule shows it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(20 * time.Millisecond)
	}))
	defer srv.Close()

	res, err := Run(context.Background(), Config{
		URL: srv.URL, Concurrency: 1, Duration: 600 * time.Millisecond, Rate: 100,
		Bodies: [][]byte{[]byte(`{}`)},
	})
	require.NoError(t, err)
	require.Greater(t, res.P99, 100*time.Millisecond)
}

func TestValidate(t *testing.T) {
	valid := Config{URL: "http://x", Concurrency: 1, Duration: time.Second, Bodies: [][]byte{{}}}
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "no url", mutate: func(c *Config) { c.URL = "" }, wantErr: "url"},
		{name: "no workers", mutate: func(c *Config) { c.Concurrency = 0 }, wantErr: "concurrency"},
		{name: "no duration", mutate: func(c *Config) { c.Duration = 0 }, wantErr: "duration"},
		{name: "negative warmup", mutate: func(c *Config) { c.Warmup = -1 }, wantErr: "warmup"},
		{name: "negative rate", mutate: func(c *Config) { c.Rate = -1 }, wantErr: "rate"},
		{name: "no bodies", mutate: func(c *Config) { c.Bodies = nil }, wantErr: "bodies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.mutate(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{name: "empty", sorted: nil, q: 0.5, want: 0},
		{name: "one", sorted: ms(7), q: 0.99, want: 7 * time.Millisecond},
		{name: "median of hundred", sorted: ms(hundred...), q: 0.5, want: 50 * time.Millisecond},
		{name: "p99 of hundred", sorted: ms(hundred...), q: 0.99, want: 99 * time.Millisecond},
		{name: "p99 of four", sorted: ms(1, 2, 3, 4), q: 0.99, want: 4 * time.Millisecond},
		{name: "median of four is the second (nearest rank)", sorted: ms(1, 2, 3, 4), q: 0.5, want: 2 * time.Millisecond},
		{name: "p90 of ten", sorted: ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), q: 0.9, want: 9 * time.Millisecond},
		{name: "p100 is the max", sorted: ms(hundred...), q: 1, want: 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, Percentile(tc.sorted, tc.q))
		})
	}
}
