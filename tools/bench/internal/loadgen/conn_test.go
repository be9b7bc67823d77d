package loadgen

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestConn sends requests over one connection and checks the answers,
// the bodies the server received, and how many connections it took.
func TestConn(t *testing.T) {
	var conns atomic.Int32
	var closeNext atomic.Bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if closeNext.Swap(false) {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("Content-Type", "text/plain")
		if string(body) == "fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write(append([]byte("got "), body...))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := &Conn{Timeout: 5 * time.Second}
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	post := func(body string) (int, string) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/x", bytes.NewReader([]byte(body)))
		require.NoError(t, err)
		resp, err := c.Do(req)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		return resp.StatusCode, string(b)
	}

	for i, tc := range []struct {
		name, body string
		status     int
		conns      int32
		before     func()
	}{
		{name: "first request dials", body: "a", status: 200, conns: 1},
		{name: "keep-alive reuses", body: "b", status: 200, conns: 1},
		{name: "error status, same connection", body: "fail", status: 503, conns: 1},
		{name: "server asks to close", body: "c", status: 200, conns: 1, before: func() { closeNext.Store(true) }},
		{name: "closed connection redialled", body: "d", status: 200, conns: 2},
		{name: "idle connection closed by the server is sent again", body: "e", status: 200, conns: 3, before: func() {
			srv.CloseClientConnections()
			time.Sleep(50 * time.Millisecond)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			status, body := post(tc.body)
			require.Equal(t, tc.status, status, "request %d", i)
			require.Equal(t, "got "+tc.body, body)
			require.Equal(t, tc.conns, conns.Load())
		})
	}

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, bytes.NewReader([]byte("x")))
		require.NoError(t, err)
		_, err = c.Do(req)
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("https refused", func(t *testing.T) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "https://127.0.0.1:1/", nil)
		require.NoError(t, err)
		_, err = c.Do(req)
		require.ErrorContains(t, err, "only http")
	})
}
