package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

// errorResponse is the JSON body of an error answer.
type errorResponse struct {
	Status     string           `json:"status"`
	ErrorType  string           `json:"errorType"`
	Error      string           `json:"error"`
	Errors     []tma.FieldError `json:"errors"`
	ErrorCount int              `json:"errorCount"`
}

func TestIngest(t *testing.T) {
	object := fixture(t, "message.json")
	array := fixture(t, "array.json")
	asProbe2 := bytes.ReplaceAll(object, []byte(`"probeId": 1`), []byte(`"probeId": 2`))
	invalid := []byte(`[{"probeId":1,"resourceId":2,"messageId":3,"sentTime":4,"data":[{"type":"measurement","descriptionId":1,"observations":[{"time":1,"value":1}]}]},
		{"probeId":1,"resourceId":"x","messageId":3,"sentTime":4,"data":[{"type":"bogus","descriptionId":1,"observations":[{"time":-1,"value":1}]}]}]`)

	tests := []struct {
		name   string
		cfg    func(*Config)
		pubErr error
		slow   bool // the publisher never answers
		req    request

		wantCode      int
		wantOK        string // exact body of a 2xx
		wantErrType   string
		wantPaths     []string // paths of the listed errors
		wantHeader    map[string]string
		wantResources []int64 // published resourceIds, in order
		wantTenant    string
	}{
		{
			name: "object, probe id", req: request{body: object, user: "1", pass: "probe-one-secret"},
			wantCode: 200, wantOK: `{"status":"ok","messages":1,"observations":3}`,
			wantResources: []int64{101098}, wantTenant: "acme",
		},
		{
			name: "array, probe name", req: request{body: array, user: "probe-one", pass: "probe-one-secret"},
			wantCode: 200, wantOK: `{"status":"ok","messages":2,"observations":3}`,
			wantResources: []int64{7, 8}, wantTenant: "acme",
		},
		{
			name: "argon2id probe, default tenant", req: request{body: asProbe2, user: "probe-two", pass: "probe-two-secret"},
			wantCode: 200, wantOK: `{"status":"ok","messages":1,"observations":3}`,
			wantResources: []int64{101098}, wantTenant: contract.DefaultTenant,
		},
		{
			name: "no content type", req: request{body: object, contentType: "-", user: "1", pass: "probe-one-secret"},
			wantCode: 200, wantOK: `{"status":"ok","messages":1,"observations":3}`, wantResources: []int64{101098}, wantTenant: "acme",
		},
		{
			name: "json with charset", req: request{body: object, contentType: "Application/JSON; charset=utf-8", user: "1", pass: "probe-one-secret"},
			wantCode: 200, wantOK: `{"status":"ok","messages":1,"observations":3}`, wantResources: []int64{101098}, wantTenant: "acme",
		},
		{
			name: "+json suffix", req: request{body: object, contentType: "application/vnd.tma+json", user: "1", pass: "probe-one-secret"},
			wantCode: 200, wantOK: `{"status":"ok","messages":1,"observations":3}`, wantResources: []int64{101098}, wantTenant: "acme",
		},
		{
			name: "auth disabled: default tenant, any probe", cfg: func(c *Config) { c.Auth = AuthConfig{Disabled: true} },
			req:      request{body: asProbe2},
			wantCode: 200, wantOK: `{"status":"ok","messages":1,"observations":3}`, wantResources: []int64{101098}, wantTenant: contract.DefaultTenant,
		},
		{
			name: "schema violations", req: request{body: invalid, user: "1", pass: "probe-one-secret"},
			wantCode: 400, wantErrType: "bad_data",
			wantPaths: []string{"[1].resourceId", "[1].data[0].type", "[1].data[0].observations[0].time"},
		},
		{
			name: "not json", req: request{body: []byte(`{"probeId":1`), user: "1", pass: "probe-one-secret"},
			wantCode: 400, wantErrType: "bad_data", wantPaths: []string{""},
		},
		{
			name: "empty body", req: request{user: "1", pass: "probe-one-secret"},
			wantCode: 400, wantErrType: "bad_data", wantPaths: []string{""},
		},
		{
			name: "too large", cfg: func(c *Config) { c.MaxBodyBytes = 100 }, req: request{body: object, user: "1", pass: "probe-one-secret"},
			wantCode: 413, wantErrType: "too_large",
		},
		{
			name: "too large, chunked", cfg: func(c *Config) { c.MaxBodyBytes = 100 }, req: request{body: object, chunked: true, user: "1", pass: "probe-one-secret"},
			wantCode: 413, wantErrType: "too_large",
		},
		{
			name: "text/plain", req: request{body: object, contentType: "text/plain", user: "1", pass: "probe-one-secret"},
			wantCode: 415, wantErrType: "unsupported_media_type",
		},
		{
			name: "form", req: request{body: object, contentType: "application/x-www-form-urlencoded", user: "1", pass: "probe-one-secret"},
			wantCode: 415, wantErrType: "unsupported_media_type",
		},
		{
			name: "GET", req: request{method: http.MethodGet, user: "1", pass: "probe-one-secret"},
			wantCode: 405, wantErrType: "method_not_allowed", wantHeader: map[string]string{"Allow": "POST"},
		},
		{
			name: "PUT", req: request{method: http.MethodPut, body: object, user: "1", pass: "probe-one-secret"},
			wantCode: 405, wantErrType: "method_not_allowed", wantHeader: map[string]string{"Allow": "POST"},
		},
		{
			name: "no credentials", req: request{body: object},
			wantCode: 401, wantErrType: "unauthorized", wantHeader: map[string]string{"WWW-Authenticate": `Basic realm="tmaflow monitor", charset="UTF-8"`},
		},
		{
			name: "wrong secret", req: request{body: object, user: "1", pass: "probe-two-secret"},
			wantCode: 401, wantErrType: "unauthorized", wantHeader: map[string]string{"WWW-Authenticate": `Basic realm="tmaflow monitor", charset="UTF-8"`},
		},
		{
			name: "unknown probe", req: request{body: object, user: "3", pass: "probe-one-secret"},
			wantCode: 401, wantErrType: "unauthorized",
		},
		{
			name: "message of another probe", req: request{body: array, user: "2", pass: "probe-two-secret"},
			wantCode: 403, wantErrType: "forbidden", wantPaths: []string{"[0].probeId", "[1].probeId"},
		},
		{
			name: "object of another probe", req: request{body: object, user: "probe-two", pass: "probe-two-secret"},
			wantCode: 403, wantErrType: "forbidden", wantPaths: []string{"probeId"},
		},
		{
			name: "publisher fails", pubErr: errors.New("broker down"), req: request{body: array, user: "1", pass: "probe-one-secret"},
			wantCode: 503, wantErrType: "unavailable", wantHeader: map[string]string{"Retry-After": "1"},
		},
		{
			name: "broker refuses the record size", pubErr: fmt.Errorf("publish to topic-monitor: %w", bus.ErrTooLarge),
			req:      request{body: array, user: "1", pass: "probe-one-secret"},
			wantCode: 413, wantErrType: "too_large",
		},
		{
			name: "publisher too slow", slow: true,
			cfg:      func(c *Config) { c.PublishTimeout = 50 * time.Millisecond; c.RetryAfter = 2500 * time.Millisecond },
			req:      request{body: array, user: "1", pass: "probe-one-secret"},
			wantCode: 503, wantErrType: "unavailable", wantHeader: map[string]string{"Retry-After": "3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			pub := &fakePublisher{err: tt.pubErr}
			if tt.slow {
				pub.block = make(chan struct{})
			}
			h := start(t, cfg, Options{Publisher: pub})
			resp := h.do(t, nil, tt.req)

			require.Equal(t, tt.wantCode, resp.code, "body: %s", resp.body)
			require.Equal(t, "application/json", resp.header.Get("Content-Type"))
			for k, v := range tt.wantHeader {
				require.Equal(t, v, resp.header.Get(k), k)
			}
			if tt.wantCode == 200 {
				require.JSONEq(t, tt.wantOK, string(resp.body))
			} else {
				var er errorResponse
				require.NoError(t, json.Unmarshal(resp.body, &er), "%s", resp.body)
				require.Equal(t, "error", er.Status)
				require.Equal(t, tt.wantErrType, er.ErrorType)
				require.NotEmpty(t, er.Error)
				var paths []string
				for _, e := range er.Errors {
					require.NotEmpty(t, e.Message)
					paths = append(paths, e.Path)
				}
				require.Equal(t, tt.wantPaths, paths)
				if tt.wantCode == 400 {
					// Every error of the decoder, as it reported it.
					_, err := tma.Decode(tt.req.body)
					var ve *tma.ValidationError
					require.ErrorAs(t, err, &ve)
					require.Equal(t, ve.Errors, er.Errors)
				}
			}

			calls := pub.published()
			if tt.wantResources == nil {
				require.Empty(t, calls, "nothing may be published")
			} else {
				require.Len(t, calls, 1, "one Publish call per request")
				requirePublished(t, calls[0], tt.req.body, tt.wantResources, tt.wantTenant)
			}
			require.Equal(t, 1.0, testutil.ToFloat64(h.svc.metrics.requests.WithLabelValues(strconv.Itoa(tt.wantCode))))
			require.Zero(t, testutil.ToFloat64(h.svc.metrics.inflight))
			if tt.wantCode == 200 {
				require.EqualValues(t, len(tt.wantResources), testutil.ToFloat64(h.svc.metrics.messages))
				require.EqualValues(t, 3, testutil.ToFloat64(h.svc.metrics.observations))
			} else {
				require.Zero(t, testutil.ToFloat64(h.svc.metrics.messages))
			}
		})
	}
}

// requirePublished checks the records of one Publish call against the
// contract table: key, value (the original bytes) and headers.
func requirePublished(t *testing.T, call published, body []byte, resources []int64, tenant string) {
	t.Helper()
	require.Equal(t, contract.TopicMonitor, call.topic)
	require.Len(t, call.msgs, len(resources))
	var elems []json.RawMessage
	if isArray(body) {
		require.NoError(t, json.Unmarshal(body, &elems))
	} else {
		elems = []json.RawMessage{body}
	}
	for i, m := range call.msgs {
		require.Equal(t, contract.ResourceKey(resources[i]), bus.Key(m))
		require.True(t, bytes.Contains(body, m.Payload), "value must be the original bytes: %s", m.Payload)
		require.JSONEq(t, string(elems[i]), string(m.Payload))
		require.Equal(t, map[string]string{
			bus.MetadataKey:            string(contract.ResourceKey(resources[i])),
			contract.HeaderTenant:      tenant,
			contract.HeaderSource:      contract.SourceHTTP,
			contract.HeaderReceivedAt:  strconv.FormatInt(fixedNow().UnixNano(), 10),
			contract.HeaderContentType: "application/json",
		}, map[string]string(m.Metadata))
	}
}

func TestPayloadsOutliveTheRequest(t *testing.T) {
	// The publisher keeps the messages; later requests reuse the body
	// buffer and must not change what was published before.
	pub := &fakePublisher{}
	h := start(t, testConfig(), Options{Publisher: pub})
	array := fixture(t, "array.json")
	other := bytes.ReplaceAll(array, []byte(`"value": `), []byte(`"value":  `))
	for range 20 {
		require.Equal(t, 200, h.do(t, nil, request{body: array, user: "1", pass: "probe-one-secret"}).code)
		require.Equal(t, 200, h.do(t, nil, request{body: other, user: "1", pass: "probe-one-secret"}).code)
	}
	for i, c := range pub.published() {
		want := array
		if i%2 == 1 {
			want = other
		}
		for _, m := range c.msgs {
			require.True(t, bytes.Contains(want, m.Payload), "call %d: %s", i, m.Payload)
		}
	}
}

func TestOverload(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInflight = 2
	pub := &fakePublisher{block: make(chan struct{}), entered: make(chan struct{}, 4)}
	h := start(t, cfg, Options{Publisher: pub})
	body := fixture(t, "message.json")

	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Go(func() { codes[i] = h.do(t, nil, request{body: body, user: "1", pass: "probe-one-secret"}).code })
	}
	<-pub.entered
	<-pub.entered
	require.Equal(t, 2.0, testutil.ToFloat64(h.svc.metrics.inflight))

	resp := h.do(t, nil, request{body: body, user: "1", pass: "probe-one-secret"})
	require.Equal(t, 429, resp.code)
	require.Equal(t, "1", resp.header.Get("Retry-After"))
	require.Contains(t, string(resp.body), `"errorType":"overloaded"`)

	pub.block <- struct{}{}
	pub.block <- struct{}{}
	wg.Wait()
	require.Equal(t, []int{200, 200}, codes)
	require.Len(t, pub.published(), 2)
	// Slots are free again.
	close(pub.block)
	require.Equal(t, 200, h.do(t, nil, request{body: body, user: "1", pass: "probe-one-secret"}).code)
}

func TestMetricsEndpoint(t *testing.T) {
	h := start(t, testConfig(), Options{Publisher: &fakePublisher{}})
	h.do(t, nil, request{body: fixture(t, "array.json"), user: "1", pass: "probe-one-secret"})
	h.do(t, nil, request{body: fixture(t, "array.json")})
	h.do(t, nil, request{body: fixture(t, "array.json"), user: "1", pass: "nope"})
	code, text := get(t, h.url+"/metrics")
	require.Equal(t, 200, code)
	for _, want := range []string{
		`tmaflow_monitor_requests_total{code="200"} 1`,
		`tmaflow_monitor_requests_total{code="401"} 2`,
		`tmaflow_monitor_requests_total{code="503"} 0`,
		`tmaflow_monitor_messages_accepted_total 2`,
		`tmaflow_monitor_observations_accepted_total 3`,
		`tmaflow_monitor_publish_duration_seconds_count 1`,
		`tmaflow_monitor_inflight_requests 0`,
		`tmaflow_monitor_auth_failures_total{reason="missing"} 1`,
		`tmaflow_monitor_auth_failures_total{reason="invalid"} 1`,
	} {
		require.Contains(t, text, want)
	}
	code, _ = get(t, h.url+"/-/healthy")
	require.Equal(t, 200, code)
	code, _ = get(t, h.url+"/nope")
	require.Equal(t, 404, code)
}

func TestReadiness(t *testing.T) {
	var mu sync.Mutex
	pingErr := errors.New("dial broker: connection refused")
	ping := func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return pingErr
	}
	setPing := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		pingErr = err
	}
	h := start(t, testConfig(), Options{Publisher: &fakePublisher{}, Ping: ping})
	ready := func() (int, string) { return get(t, h.url+"/-/ready") }
	waitReady := func(want int) {
		t.Helper()
		require.Eventually(t, func() bool { c, _ := ready(); return c == want }, 5*time.Second, 5*time.Millisecond)
	}

	require.Eventually(t, func() bool {
		c, body := ready()
		return c == 503 && strings.Contains(body, "broker unreachable: dial broker: connection refused")
	}, 5*time.Second, 5*time.Millisecond)
	code, _ := get(t, h.url+"/-/healthy")
	require.Equal(t, 200, code)

	setPing(nil)
	waitReady(200)
	require.Equal(t, 1.0, testutil.ToFloat64(h.svc.metrics.brokerUp))
	setPing(errors.New("broker gone"))
	waitReady(503)
	require.Zero(t, testutil.ToFloat64(h.svc.metrics.brokerUp))
	setPing(nil)
	waitReady(200)

	// Shutdown turns not ready for good, even with the broker up.
	h.svc.Interrupt(nil)
	require.Eventually(t, func() bool { return !h.prober.IsReady() }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(60 * time.Millisecond) // a few check intervals
	require.False(t, h.prober.IsReady())
}

func TestReadyWithoutPing(t *testing.T) {
	h := start(t, testConfig(), Options{Publisher: &fakePublisher{}})
	require.Eventually(t, func() bool { c, _ := get(t, h.url+"/-/ready"); return c == 200 }, 5*time.Second, 5*time.Millisecond)
}

func TestFailedPublishChecksBrokerAtOnce(t *testing.T) {
	cfg := testConfig()
	cfg.ReadyCheckInterval = time.Hour // only the first check and nudges
	var mu sync.Mutex
	var pings int
	var pingErr error
	h := start(t, cfg, Options{
		Publisher: &fakePublisher{err: errors.New("broker down")},
		Ping: func(context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			pings++
			return pingErr
		},
	})
	require.Eventually(t, h.prober.IsReady, 5*time.Second, 5*time.Millisecond)
	mu.Lock()
	pingErr = errors.New("broker down")
	mu.Unlock()
	require.Equal(t, 503, h.do(t, nil, request{body: fixture(t, "message.json"), user: "1", pass: "probe-one-secret"}).code)
	require.Eventually(t, func() bool { return !h.prober.IsReady() }, 5*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, pings)
}

func TestGracefulShutdown(t *testing.T) {
	pub := &fakePublisher{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	h := start(t, testConfig(), Options{Publisher: pub})

	codes := make(chan int, 1)
	go func() {
		codes <- h.do(t, nil, request{body: fixture(t, "message.json"), user: "1", pass: "probe-one-secret"}).code
	}()
	<-pub.entered // the request is in flight, waiting for the broker

	h.svc.Interrupt(nil)
	require.Eventually(t, func() bool { return !h.prober.IsReady() }, 5*time.Second, 5*time.Millisecond)
	// New connections are refused while the in-flight request drains.
	require.Eventually(t, func() bool {
		_, err := http.Get(h.url + "/-/healthy")
		return err != nil
	}, 5*time.Second, 5*time.Millisecond)
	select {
	case err := <-h.done:
		t.Fatalf("Execute returned with a request in flight: %v", err)
	case <-time.After(50 * time.Millisecond):
	}

	pub.block <- struct{}{}
	require.Equal(t, 200, <-codes)
	select {
	case err := <-h.done:
		require.NoError(t, err)
		close(h.done)
	case <-time.After(5 * time.Second):
		t.Fatal("Execute did not return after the request finished")
	}
	require.Len(t, pub.published(), 1)
}

func TestShutdownTimeoutCutsOff(t *testing.T) {
	cfg := testConfig()
	cfg.ShutdownTimeout = 50 * time.Millisecond
	pub := &fakePublisher{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	h := start(t, cfg, Options{Publisher: pub})
	go func() {
		req, _ := http.NewRequest(http.MethodPost, h.url+Path, bytes.NewReader(fixture(t, "message.json")))
		req.SetBasicAuth("1", "probe-one-secret")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
		}
	}()
	<-pub.entered
	h.svc.Interrupt(nil)
	select {
	case err := <-h.done:
		require.NoError(t, err)
		close(h.done)
	case <-time.After(5 * time.Second):
		t.Fatal("Execute did not return after the shutdown timeout")
	}
	close(pub.block)
}

func TestReload(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/registry.yaml"
	writeFile(t, path, fixture(t, "registry.yaml"))
	cfg := testConfig()
	cfg.Auth.Registry = path
	h := start(t, cfg, Options{Publisher: &fakePublisher{}})
	body := fixture(t, "message.json")
	require.Equal(t, 200, h.do(t, nil, request{body: body, user: "1", pass: "probe-one-secret"}).code)

	// Probe 1 gets probe 2's secret.
	changed := strings.Replace(string(fixture(t, "registry.yaml")), "$2a$04$Psij8yunQ9Ap4O/Hif0cWewJenF.rugkPvyNEQVwPm9VrU.GpuDC2",
		"$2a$04$BftKePRKDKo2//LoY1O30.PoJY8qQo8gheUp221zPBZTmT5iDRoBO", 1)
	writeFile(t, path, []byte(changed))
	require.NoError(t, h.svc.Reload())
	require.Equal(t, 401, h.do(t, nil, request{body: body, user: "1", pass: "probe-one-secret"}).code)
	require.Equal(t, 200, h.do(t, nil, request{body: body, user: "1", pass: "probe-two-secret"}).code)

	writeFile(t, path, []byte("probes: [{id: 1, nme: x}]\n"))
	err := h.svc.Reload()
	require.ErrorContains(t, err, "registry.yaml:1:18: probes[0].nme: unknown field")
	require.Equal(t, 200, h.do(t, nil, request{body: body, user: "1", pass: "probe-two-secret"}).code, "old registry stays")
	require.Equal(t, 1.0, testutil.ToFloat64(h.svc.metrics.reloads.WithLabelValues("success")))
	require.Equal(t, 1.0, testutil.ToFloat64(h.svc.metrics.reloads.WithLabelValues("failure")))
}
