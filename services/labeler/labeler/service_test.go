package labeler_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/schemas"
	"github.com/tmaflow/tmaflow/services/labeler/labeler"
)

// harness runs a labeler between two in-process pub/subs: in carries
// topic-monitor and topic-samples, out receives topic-metrics and
// topic-dlq (the router closes its subscriber, so they are separate).
type harness struct {
	svc      *labeler.Service
	in       *gochannel.GoChannel
	out      *gochannel.GoChannel
	metrics  <-chan *message.Message
	dlq      <-chan *message.Message
	reg      *prometheus.Registry
	registry string // path of the registry file
}

func testConfig(t *testing.T, registryFile string) labeler.Config {
	t.Helper()
	cfg := labeler.DefaultConfig()
	cfg.ListenAddress = ""
	cfg.Registry = registryFile
	cfg.RegistryCheckInterval = 10 * time.Millisecond
	cfg.Bus.MaxRetries = 2
	cfg.Bus.InitialInterval = time.Millisecond
	cfg.Bus.MaxInterval = 5 * time.Millisecond
	cfg.Bus.CloseTimeout = 5 * time.Second
	return cfg
}

// copyRegistry puts testdata/name in a temporary directory, where tests
// may rewrite it.
func copyRegistry(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "registry.yaml")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

type publisherFunc func(topic string, msgs ...*message.Message) error

func (f publisherFunc) Publish(topic string, msgs ...*message.Message) error {
	return f(topic, msgs...)
}
func (publisherFunc) Close() error { return nil }

func start(t *testing.T, edit func(*labeler.Config), wrap func(message.Publisher) message.Publisher) *harness {
	t.Helper()
	h := &harness{
		in:       gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{}),
		out:      gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 64}, watermill.NopLogger{}),
		reg:      prometheus.NewRegistry(),
		registry: copyRegistry(t, "registry.yaml"),
	}
	t.Cleanup(func() { require.NoError(t, h.out.Close()) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var err error
	h.metrics, err = h.out.Subscribe(ctx, contract.TopicMetrics)
	require.NoError(t, err)
	h.dlq, err = h.out.Subscribe(ctx, contract.TopicDLQ)
	require.NoError(t, err)

	cfg := testConfig(t, h.registry)
	if edit != nil {
		edit(&cfg)
	}
	var pub message.Publisher = h.out
	if wrap != nil {
		pub = wrap(pub)
	}
	prober := service.NewProber()
	h.svc, err = labeler.New(cfg, labeler.Options{
		Subscriber: h.in, Publisher: pub, Registry: h.reg, Prober: prober,
		Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- h.svc.Execute() }()
	t.Cleanup(func() {
		h.svc.Interrupt(nil)
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("labeler did not stop")
		}
	})
	require.Eventually(t, prober.IsReady, 5*time.Second, time.Millisecond)
	return h
}

func (h *harness) send(t *testing.T, topic string, payload []byte, headers map[string]string) {
	t.Helper()
	m := message.NewMessage(watermill.NewUUID(), payload)
	for k, v := range headers {
		m.Metadata.Set(k, v)
	}
	bus.SetKey(m, []byte("in-key"))
	require.NoError(t, h.in.Publish(topic, m))
}

func receive(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m := <-ch:
		m.Ack()
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
		return nil
	}
}

func requireNone(t *testing.T, ch <-chan *message.Message) {
	t.Helper()
	select {
	case m := <-ch:
		m.Ack()
		t.Fatalf("unexpected message: %q %v", m.Payload, m.Metadata)
	case <-time.After(50 * time.Millisecond):
	}
}

func decode(t *testing.T, m *message.Message) *samples.Batch {
	t.Helper()
	b, err := samples.Decode(m.Payload)
	require.NoError(t, err)
	return b
}

const tmaMessage = `{"probeId":1,"resourceId":101098,"messageId":7,"sentTime":1700000000,
 "data":[{"descriptionId":27,"type":"measurement","observations":[{"time":1700000000,"value":42.5}]},
         {"descriptionId":99,"type":"event","observations":[{"time":1700000000123,"value":1}]}]}`

func TestTMAToMetrics(t *testing.T) {
	h := start(t, nil, nil)
	h.send(t, contract.TopicMonitor, []byte(tmaMessage), map[string]string{
		contract.HeaderTenant: "acme", contract.HeaderSource: contract.SourceHTTP,
		contract.HeaderReceivedAt: "1700000000999000000", contract.HeaderContentType: contract.ContentTypeTMA,
	})
	m := receive(t, h.metrics)
	require.Equal(t, samples.MetricsKey("acme", "resource_id=101098"), bus.Key(m))
	require.Equal(t, message.Metadata{
		bus.MetadataKey:           string(samples.MetricsKey("acme", "resource_id=101098")),
		contract.HeaderTenant:     "acme",
		contract.HeaderReceivedAt: "1700000000999000000",
	}, m.Metadata, "only the contract's headers")
	b := decode(t, m)
	require.Equal(t, "acme", b.Tenant)
	require.Equal(t, samples.SourceTMA, b.Source)
	require.Len(t, b.Series, 2)
	require.Equal(t, "cpu_usage_percent", b.Series[0].Labels[0].Value)
	require.Equal(t, []samples.Sample{{TimestampMs: 1700000000000, Value: 42.5}}, b.Series[0].Samples)
	require.Equal(t, "tma_event", b.Series[1].Labels[0].Value)
	require.Contains(t, b.Series[1].Labels, samples.Label{Name: "description_id", Value: "99"})
	require.Equal(t, []samples.Sample{{TimestampMs: 1700000000123, Value: 1}}, b.Series[1].Samples)

	// The record is the schema's: goavro reads it with schemas/.
	codec, err := goavro.NewCodec(schemas.SampleBatchAvsc())
	require.NoError(t, err)
	native, rest, err := codec.NativeFromSingle(m.Payload)
	require.NoError(t, err)
	require.Empty(t, rest)
	require.Equal(t, "acme", native.(map[string]any)["tenant"])

	require.Eventually(t, func() bool {
		return testutil.ToFloat64(counter(t, h.reg, "tmaflow_labeler_unknown_id_observations_total", "kind", "description")) == 1
	}, time.Second, time.Millisecond)
	require.Equal(t, 2.0, testutil.ToFloat64(counter(t, h.reg, "tmaflow_labeler_series_total", "input", "tma")))
}

// Records written to topic-monitor by a TMA probe directly carry no
// tenant header: the registry's probe tenant applies.
func TestTMATenantFromRegistry(t *testing.T) {
	h := start(t, nil, nil)
	h.send(t, contract.TopicMonitor, []byte(tmaMessage), nil)
	m := receive(t, h.metrics)
	require.Equal(t, "acme", m.Metadata.Get(contract.HeaderTenant))
	require.Equal(t, "acme", decode(t, m).Tenant)
	require.Empty(t, m.Metadata.Get(contract.HeaderReceivedAt))
}

func TestSamplesToMetrics(t *testing.T) {
	h := start(t, nil, nil)
	in := samples.Encode(nil, &samples.Batch{Tenant: "acme", Source: samples.SourceMQTT, Series: []samples.Series{
		{Labels: []samples.Label{{Name: "__name__", Value: "temp_celsius"}, {Name: "instance", Value: "dev7"}, {Name: "tenant", Value: "evil"}},
			Samples: []samples.Sample{{TimestampMs: 1700000000000, Value: 21.5}}, Metadata: &samples.Metadata{Type: samples.Gauge, Unit: "celsius"}},
		{Labels: []samples.Label{{Name: "__name__", Value: "debug_heap_bytes"}, {Name: "instance", Value: "dev7"}},
			Samples: []samples.Sample{{TimestampMs: 1700000000000, Value: 1}}},
	}})
	h.send(t, contract.TopicSamples, in, map[string]string{
		contract.HeaderTenant: "acme", contract.HeaderSource: contract.SourceMQTT,
		contract.HeaderReceivedAt: "5", contract.HeaderMQTTTopic: "plant/porto/dev7/temp",
	})
	m := receive(t, h.metrics)
	require.Equal(t, samples.MetricsKey("acme", "instance=dev7"), bus.Key(m))
	b := decode(t, m)
	require.Equal(t, &samples.Batch{Tenant: "acme", Source: samples.SourceMQTT, Series: []samples.Series{
		{Labels: []samples.Label{{Name: "__name__", Value: "temp_celsius"}, {Name: "device", Value: "dev7"}, {Name: "exported_tenant", Value: "evil"},
			{Name: "instance", Value: "dev7"}, {Name: "site", Value: "porto"}, {Name: "tenant", Value: "acme"}},
			Samples: []samples.Sample{{TimestampMs: 1700000000000, Value: 21.5}}, Metadata: &samples.Metadata{Type: samples.Gauge, Unit: "celsius"}},
	}}, b)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(counter(t, h.reg, "tmaflow_labeler_dropped_series_total", "input", "samples", "reason", "label_rule")) == 1
	}, time.Second, time.Millisecond)
}

func TestUndecodableToDLQ(t *testing.T) {
	h := start(t, nil, nil)
	for _, tc := range []struct {
		name, topic string
		payload     []byte
		reason      string
	}{
		{"not json", contract.TopicMonitor, []byte("{nope"), "decode tma message: invalid tma message"},
		{"schema violation", contract.TopicMonitor, []byte(`{"probeId":1,"resourceId":2,"messageId":3,"sentTime":4,"data":[]}`), "data"},
		{"not avro", contract.TopicSamples, []byte(`{"tenant":"t"}`), "decode sample batch: not an avro single-object record"},
		{"other schema", contract.TopicSamples, append([]byte{0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}, 0, 0, 0), "unknown schema fingerprint"},
		{"truncated", contract.TopicSamples, samples.Encode(nil, &samples.Batch{Tenant: "t", Series: []samples.Series{{}}})[:12], "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.send(t, tc.topic, tc.payload, map[string]string{contract.HeaderTenant: "acme"})
			d := receive(t, h.dlq)
			require.Equal(t, tc.payload, []byte(d.Payload), "original bytes")
			require.Equal(t, []byte("in-key"), bus.Key(d), "original key")
			require.Contains(t, d.Metadata.Get(contract.HeaderError), tc.reason)
			require.Equal(t, tc.topic, d.Metadata.Get(contract.HeaderSourceTopic))
			require.Equal(t, "acme", d.Metadata.Get(contract.HeaderTenant))
			require.NotEmpty(t, d.Metadata.Get(contract.HeaderStage))
			requireNone(t, h.metrics)
		})
	}
	// The partition is not blocked: the next good record flows.
	h.send(t, contract.TopicMonitor, []byte(tmaMessage), map[string]string{contract.HeaderTenant: "acme"})
	receive(t, h.metrics)
	require.Equal(t, 3.0, testutil.ToFloat64(counter(t, h.reg, "tmaflow_labeler_undecodable_records_total", "topic", contract.TopicSamples)))
}

// A publish that fails is retried, and the record is acknowledged only
// once the batch was published: the consumed offset never runs ahead.
func TestPublishFailureRetried(t *testing.T) {
	var fails atomic.Int32
	fails.Store(2)
	h := start(t, nil, func(next message.Publisher) message.Publisher {
		return publisherFunc(func(topic string, msgs ...*message.Message) error {
			if topic == contract.TopicMetrics && fails.Add(-1) >= 0 {
				return errors.New("broker down")
			}
			return next.Publish(topic, msgs...)
		})
	})
	h.send(t, contract.TopicMonitor, []byte(tmaMessage), map[string]string{contract.HeaderTenant: "acme"})
	receive(t, h.metrics)
	requireNone(t, h.dlq)
	require.Equal(t, 2.0, testutil.ToFloat64(counter(t, h.reg, "tmaflow_bus_handler_retries_total", "handler", labeler.StageTMA)))
}

func metricName(t *testing.T, m *message.Message) string {
	t.Helper()
	return decode(t, m).Series[0].Labels[0].Value
}

func TestReloadKeepsRunning(t *testing.T) {
	h := start(t, nil, nil)
	send := func() {
		h.send(t, contract.TopicMonitor, []byte(tmaMessage), map[string]string{contract.HeaderTenant: "acme"})
	}
	send()
	require.Equal(t, "cpu_usage_percent", metricName(t, receive(t, h.metrics)))

	// A changed file is picked up by the watcher.
	data, err := os.ReadFile(h.registry)
	require.NoError(t, err)
	renamed := strings.Replace(string(data), "name: cpu_usage", "name: cpu_load", 1)
	require.NoError(t, os.WriteFile(h.registry, []byte(renamed), 0o600))
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(counter(t, h.reg, "tmaflow_labeler_registry_reloads_total", "trigger", "file", "result", "success")) == 1
	}, 5*time.Second, 5*time.Millisecond)
	send()
	require.Equal(t, "cpu_load_percent", metricName(t, receive(t, h.metrics)))

	// A broken file is reported, and the registry in force stays.
	require.NoError(t, os.WriteFile(h.registry, []byte(renamed+"\nbogus: 1\n"), 0o600))
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(counter(t, h.reg, "tmaflow_labeler_registry_reloads_total", "trigger", "file", "result", "failure")) == 1
	}, 5*time.Second, 5*time.Millisecond)
	view := getRegistry(t, h.svc.Handler())
	require.Contains(t, view.LastError.Error, "bogus: unknown field")
	send()
	require.Equal(t, "cpu_load_percent", metricName(t, receive(t, h.metrics)))
	err = h.svc.Reload()
	require.ErrorContains(t, err, "registry.yaml:")
	require.ErrorContains(t, err, "bogus: unknown field")
	// It is reported once, not at every check.
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, 1.0, testutil.ToFloat64(counter(t, h.reg, "tmaflow_labeler_registry_reloads_total", "trigger", "file", "result", "failure")))

	// SIGHUP after a fix.
	require.NoError(t, os.WriteFile(h.registry, data, 0o600))
	require.NoError(t, h.svc.Reload())
	send()
	require.Equal(t, "cpu_usage_percent", metricName(t, receive(t, h.metrics)))
	require.Nil(t, getRegistry(t, h.svc.Handler()).LastError)
}

// Records mapped while the registry is swapped are neither lost nor
// duplicated: each is published once, with the old or the new names.
func TestReloadUnderLoad(t *testing.T) {
	h := start(t, func(c *labeler.Config) { c.RegistryCheckInterval = 0 }, nil)
	const n = 300
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			msg := strings.Replace(tmaMessage, `"messageId":7`, `"messageId":`+strconv.Itoa(i), 1)
			msg = strings.Replace(msg, `"value":42.5`, `"value":`+strconv.Itoa(i), 1)
			h.send(t, contract.TopicMonitor, []byte(msg), map[string]string{contract.HeaderTenant: "acme"})
		}
	})
	wg.Go(func() {
		for range 20 {
			if err := h.svc.Reload(); err != nil {
				t.Error(err)
			}
		}
	})
	// Records of one resource consumed together make one topic-metrics
	// record: count the samples of description 27 (the value varied), not
	// those of the unknown event description 99.
	seen := map[float64]int{}
	for total := 0; total < n; {
		b := decode(t, receive(t, h.metrics))
		for _, ser := range b.Series {
			if ser.Labels[0].Value == "tma_event" {
				continue
			}
			for _, smp := range ser.Samples {
				seen[smp.Value]++
				total++
			}
		}
	}
	wg.Wait()
	require.Len(t, seen, n)
	requireNone(t, h.metrics)
}

type registryView struct {
	Path         string `json:"path"`
	SHA256       string `json:"sha256"`
	LoadedAt     time.Time
	Descriptions []struct {
		ID     int64  `json:"id"`
		Metric string `json:"metric"`
	} `json:"descriptions"`
	LabelRules []json.RawMessage `json:"label_rules"`
	MetaLabels []string          `json:"meta_labels"`
	LastError  *struct {
		Error string `json:"error"`
	} `json:"last_error"`
}

func getRegistry(t *testing.T, h http.Handler) registryView {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, labeler.RegistryPath, nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	body := rec.Body.String()
	require.NotContains(t, body, "$2a$", "secret hashes are never shown")
	require.NotContains(t, body, "secret_hash")
	var v registryView
	require.NoError(t, json.Unmarshal([]byte(body), &v))
	return v
}

func TestRegistryEndpoint(t *testing.T) {
	h := start(t, func(c *labeler.Config) { c.ListenAddress = "127.0.0.1:0" }, nil)
	v := getRegistry(t, h.svc.Handler())
	require.Equal(t, h.registry, v.Path)
	require.Len(t, v.SHA256, 64)
	require.Equal(t, []int64{27, 28, 29}, []int64{v.Descriptions[0].ID, v.Descriptions[1].ID, v.Descriptions[2].ID})
	require.Equal(t, "bytes_sent_bytes_total", v.Descriptions[1].Metric)
	require.Len(t, v.LabelRules, 4)
	require.Contains(t, v.MetaLabels, labeler.MetaMQTTTopic)

	// The same over the service's own listener, next to the ops endpoints.
	for path, want := range map[string]int{labeler.RegistryPath: 200, "/metrics": 200, "/-/ready": 200, "/-/healthy": 200} {
		resp, err := http.Get("http://" + h.svc.Addr() + path)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, want, resp.StatusCode, path)
	}
	resp, err := http.Post("http://"+h.svc.Addr()+labeler.RegistryPath, "text/plain", nil)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestNewErrors(t *testing.T) {
	good := labeler.Options{Subscriber: gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{}), Publisher: publisherFunc(nil)}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("descriptions:\n  - id: 1\n    name: x\n    type: measurement\n    unit: \"m³\"\n"), 0o600))
	for _, tc := range []struct {
		name string
		cfg  func() labeler.Config
		opts labeler.Options
		want string
	}{
		{"no registry flag", func() labeler.Config { c := labeler.DefaultConfig(); return c }, good, "registry is required"},
		{"missing file", func() labeler.Config { return testConfig(t, filepath.Join(t.TempDir(), "none.yaml")) }, good, "no such file"},
		{"invalid file", func() labeler.Config { return testConfig(t, bad) }, good, bad + `:5:11: descriptions[0].unit: invalid unit "m³"`},
		{"no subscriber", func() labeler.Config { return testConfig(t, bad) }, labeler.Options{Publisher: good.Publisher}, "no subscriber"},
		{"no publisher", func() labeler.Config { return testConfig(t, bad) }, labeler.Options{Subscriber: good.Subscriber}, "no publisher"},
		{"bad limits", func() labeler.Config { c := testConfig(t, bad); c.Limits.Series = -1; return c }, good, "samples.max-series"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := labeler.New(tc.cfg(), tc.opts)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// counter returns the child of a metric family with the given labels.
func counter(t *testing.T, reg *prometheus.Registry, name string, kv ...string) prometheus.Collector {
	t.Helper()
	return collectorFunc(func() float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
		next:
			for _, m := range mf.GetMetric() {
				have := map[string]string{}
				for _, lp := range m.GetLabel() {
					have[lp.GetName()] = lp.GetValue()
				}
				for i := 0; i+1 < len(kv); i += 2 {
					if have[kv[i]] != kv[i+1] {
						continue next
					}
				}
				if c := m.GetCounter(); c != nil {
					return c.GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		return 0
	})
}

// collectorFunc adapts a value to testutil.ToFloat64.
type collectorFunc func() float64

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	ch <- prometheus.NewDesc("x", "x", nil, nil)
}

func (f collectorFunc) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.GaugeValue, f())
}

// The labeler turns ready only once its consumer group is near the ends of
// topic-monitor and topic-samples.
func TestReadyAfterCatchUp(t *testing.T) {
	in := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	out := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() { require.NoError(t, out.Close()) })
	cfg := testConfig(t, copyRegistry(t, "registry.yaml"))
	cfg.Ready.MaxLag = 10
	cfg.Ready.CheckInterval = time.Millisecond
	var lag atomic.Int64
	lag.Store(5000)
	prober := service.NewProber()
	svc, err := labeler.New(cfg, labeler.Options{
		Subscriber: in, Publisher: out, Prober: prober,
		Lag: func(context.Context) (int64, error) { return lag.Load(), nil },
	})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- svc.Execute() }()
	defer func() {
		svc.Interrupt(nil)
		require.NoError(t, <-done)
	}()

	rec := httptest.NewRecorder()
	require.Eventually(t, func() bool {
		rec = httptest.NewRecorder()
		prober.ReadyHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
		return strings.Contains(rec.Body.String(), "catching up: 5000 records behind")
	}, 5*time.Second, time.Millisecond, rec.Body.String())
	require.False(t, prober.IsReady())
	lag.Store(10)
	require.Eventually(t, prober.IsReady, 5*time.Second, time.Millisecond)
}
