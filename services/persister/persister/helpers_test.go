package persister

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// base is the time of the test data: recent, so a real Prometheus
// accepts it too (its head takes samples within an hour or so of the
// newest), and on a whole minute.
var base = time.Now().Add(-30 * time.Minute).Truncate(time.Minute)

func ms(d time.Duration) int64 { return base.Add(d).UnixMilli() }

// series builds a series from "name" and label pairs.
func series(name string, kv ...string) samples.Series {
	ls := []samples.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		ls = append(ls, samples.Label{Name: kv[i], Value: kv[i+1]})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	return samples.Series{Labels: ls}
}

// at appends samples (offset from base, value) to s.
func at(s samples.Series, pts ...any) samples.Series {
	for i := 0; i+1 < len(pts); i += 2 {
		s.Samples = append(s.Samples, samples.Sample{TimestampMs: ms(pts[i].(time.Duration)), Value: toFloat(pts[i+1])})
	}
	return s
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	panic(fmt.Sprintf("bad value %T", v))
}

func batch(tenant string, ss ...samples.Series) *samples.Batch {
	return &samples.Batch{Tenant: tenant, Source: samples.SourceTMA, Series: ss}
}

// openTestDB opens a TSDB in a temporary directory.
func openTestDB(t *testing.T, window time.Duration) *tsdb.DB {
	t.Helper()
	cfg := DefaultConfig().TSDB
	cfg.Path = t.TempDir()
	cfg.OutOfOrderWindow = window
	db, err := openTSDB(cfg, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// stored returns every sample of the TSDB by series, as the query path
// sees them (merged, deduplicated).
func stored(t *testing.T, db *tsdb.DB) map[string][]samples.Sample {
	t.Helper()
	q, err := db.Querier(0, 1<<62)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	out := map[string][]samples.Sample{}
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))
	for set.Next() {
		it := set.At().Iterator(nil)
		key := set.At().Labels().String()
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			require.Equal(t, chunkenc.ValFloat, vt)
			ts, v := it.At()
			out[key] = append(out[key], samples.Sample{TimestampMs: ts, Value: v})
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return out
}

func countStored(m map[string][]samples.Sample) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// fakePublisher records published messages; it fails while err is set.
type fakePublisher struct {
	mu   sync.Mutex
	err  error
	msgs map[string][]*message.Message
}

func (p *fakePublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	if p.msgs == nil {
		p.msgs = map[string][]*message.Message{}
	}
	p.msgs[topic] = append(p.msgs[topic], msgs...)
	return nil
}

func (p *fakePublisher) Close() error { return nil }

func (p *fakePublisher) setErr(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

func (p *fakePublisher) published(topic string) []*message.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*message.Message(nil), p.msgs[topic]...)
}

func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.TSDB.Path = t.TempDir()
	cfg.Ready.Settle = 0
	cfg.Ready.CheckInterval = 10 * time.Millisecond
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Bus.InitialInterval = time.Millisecond
	cfg.Bus.MaxInterval = 10 * time.Millisecond
	cfg.Bus.CloseTimeout = 5 * time.Second
	cfg.RemoteWrite.MinBackoff = time.Millisecond
	cfg.RemoteWrite.MaxBackoff = 20 * time.Millisecond
	return cfg
}

// harness is a running service fed through an in-process pub/sub.
type harness struct {
	svc    *Service
	url    string
	bus    *gochannel.GoChannel
	dlq    *fakePublisher
	reg    *prometheus.Registry
	prober *service.Prober
	done   chan error
}

// start runs the service on cfg. Publishing to h.bus returns once the
// service acknowledged the message.
func start(t *testing.T, cfg Config, opts Options, v verifier) *harness {
	t.Helper()
	h := &harness{
		bus: gochannel.NewGoChannel(gochannel.Config{
			Persistent:                     true,
			BlockPublishUntilSubscriberAck: true,
		}, watermill.NopLogger{}),
		dlq:    &fakePublisher{},
		reg:    prometheus.NewRegistry(),
		prober: service.NewProber(),
		done:   make(chan error, 1),
	}
	if opts.Subscriber == nil {
		opts.Subscriber = h.bus
	}
	if cfg.RemoteWrite.Enabled() && opts.RemoteWriteSubscriber == nil {
		opts.RemoteWriteSubscriber = h.bus
	}
	if opts.Publisher == nil {
		opts.Publisher = h.dlq
	}
	if d, ok := opts.Publisher.(*fakePublisher); ok {
		h.dlq = d
	}
	opts.Registry, opts.Prober = h.reg, h.prober
	svc, err := newService(cfg, opts, v)
	require.NoError(t, err)
	h.svc = svc
	h.url = "http://" + svc.Addr()
	go func() { h.done <- svc.Execute() }()
	t.Cleanup(func() { h.stop(t) })
	select {
	case <-svc.consumer.Running():
	case <-time.After(10 * time.Second):
		t.Fatal("consumer did not start")
	}
	if svc.rwConsumer != nil {
		select {
		case <-svc.rwConsumer.Running():
		case <-time.After(10 * time.Second):
			t.Fatal("remote-write consumer did not start")
		}
	}
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
	case <-time.After(15 * time.Second):
		t.Fatal("Execute did not return")
	}
}

// publish sends b to topic-metrics and returns once it was handled.
func (h *harness) publish(t *testing.T, b *samples.Batch) {
	t.Helper()
	msg := message.NewMessage(watermill.NewUUID(), samples.Encode(nil, b))
	msg.Metadata.Set(contract.HeaderTenant, b.Tenant)
	require.NoError(t, h.bus.Publish(contract.TopicMetrics, msg))
}

// get sends an API request with the given tenant header (none if "").
func (h *harness) get(t *testing.T, tenant, path string, params url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, h.url+path+"?"+params.Encode(), nil)
	require.NoError(t, err)
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	return send(t, req)
}

// post sends the parameters as a form.
func (h *harness) post(t *testing.T, tenant, path string, params url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+path, strings.NewReader(params.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { require.NoError(t, resp.Body.Close()) }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// gathered is the value of the series of metric name with the given
// labels (among others) in reg, summed; 0 when there is none.
func gathered(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
