package monitor

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
)

// nopPublisher acknowledges at once.
type nopPublisher struct{}

func (nopPublisher) Publish(string, ...*message.Message) error { return nil }
func (nopPublisher) Close() error                              { return nil }

// message20 is a TMA message with 20 observations, as in the ingest benchmark.
func message20() []byte {
	var obs []string
	for i := range 20 {
		obs = append(obs, fmt.Sprintf(`{"time":%d,"value":%d.25}`, 1700000000000+int64(i), i))
	}
	return []byte(`{"probeId":1,"resourceId":101098,"messageId":7,"sentTime":1700000000000,"data":[{"type":"measurement","descriptionId":1,"observations":[` +
		strings.Join(obs, ",") + `]}]}`)
}

// BenchmarkHandler measures the handler alone: auth (cached), decode,
// publish to a no-op publisher, response.
func BenchmarkHandler(b *testing.B) {
	cfg := testConfig()
	svc, err := New(cfg, Options{Publisher: nopPublisher{}})
	require.NoError(b, err)
	defer func() { require.NoError(b, svc.http.Listener.Close()) }()
	body := message20()
	newReq := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		r.SetBasicAuth("probe-one", "probe-one-secret")
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	w := httptest.NewRecorder()
	svc.route(w, newReq())
	require.Equal(b, 200, w.Code, w.Body.String())

	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		r := newReq()
		rw := &discardWriter{h: http.Header{}}
		for pb.Next() {
			r.Body = io.NopCloser(bytes.NewReader(body))
			clear(rw.h)
			svc.route(rw, r)
			if rw.code != 200 {
				b.Fatalf("code %d", rw.code)
			}
		}
	})
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// BenchmarkHTTP posts over keep-alive connections to the real listener
// (client and server share the machine's cores).
func BenchmarkHTTP(b *testing.B) {
	cfg := testConfig()
	svc, err := New(cfg, Options{Publisher: nopPublisher{}})
	require.NoError(b, err)
	done := make(chan error, 1)
	go func() { done <- svc.Execute() }()
	defer func() {
		svc.Interrupt(nil)
		require.NoError(b, <-done)
	}()
	body := message20()
	url := "http://" + svc.Addr() + Path
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			req.SetBasicAuth("probe-one", "probe-one-secret")
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("code %d", resp.StatusCode)
			}
		}
	})
}
