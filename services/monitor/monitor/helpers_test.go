package monitor

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// published is one Publish call as the publisher saw it.
type published struct {
	topic string
	msgs  []*message.Message
}

// fakePublisher records successful publishes. It fails with err when set,
// and when block is set waits for a token on it or the message context's
// end, whichever comes first.
type fakePublisher struct {
	err     error
	block   chan struct{}
	entered chan struct{} // receives one value per Publish call, if set

	mu    sync.Mutex
	calls []published
}

func (p *fakePublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.entered != nil {
		p.entered <- struct{}{}
	}
	if p.block != nil {
		select {
		case <-p.block:
		case <-msgs[0].Context().Done():
			return fmt.Errorf("publish to %s: %w", topic, msgs[0].Context().Err())
		}
	}
	if p.err != nil {
		return p.err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, published{topic: topic, msgs: msgs})
	return nil
}

func (p *fakePublisher) Close() error { return nil }

func (p *fakePublisher) published() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]published(nil), p.calls...)
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.Auth.Registry = filepath.Join("testdata", "registry.yaml")
	cfg.ReadyCheckInterval = 20 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

// harness is a running service.
type harness struct {
	svc    *Service
	url    string
	reg    *prometheus.Registry
	prober *service.Prober
	done   chan error
}

func fixedNow() time.Time { return time.Date(2026, 5, 1, 12, 0, 0, 123, time.UTC) }

func start(t *testing.T, cfg Config, opts Options) *harness {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Prober == nil {
		opts.Prober = service.NewProber()
	}
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	svc, err := New(cfg, opts)
	require.NoError(t, err)
	h := &harness{svc: svc, url: "http://" + svc.Addr(), reg: opts.Registry, prober: opts.Prober, done: make(chan error, 1)}
	if cfg.TLS.Enabled() {
		h.url = "https://" + svc.Addr()
	}
	go func() { h.done <- svc.Execute() }()
	t.Cleanup(func() { h.stop(t) })
	return h
}

func (h *harness) stop(t *testing.T) {
	t.Helper()
	h.svc.Interrupt(nil)
	select {
	case err, ok := <-h.done:
		if ok {
			require.NoError(t, err)
			close(h.done)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Execute did not return")
	}
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

type request struct {
	method      string
	body        []byte
	contentType string // "-" for none
	user, pass  string // no Basic auth when user is ""
	chunked     bool   // hide the length
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (h *harness) do(t *testing.T, client *http.Client, r request) response {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	var body io.Reader = bytes.NewReader(r.body)
	if r.chunked {
		body = io.MultiReader(bytes.NewReader(r.body)) // unknown length: chunked
	}
	req, err := http.NewRequest(r.method, h.url+Path, body)
	require.NoError(t, err)
	switch r.contentType {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.user != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer func() { require.NoError(t, resp.Body.Close()) }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func writeFile(t *testing.T, path string, content []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, content, 0o600))
}
