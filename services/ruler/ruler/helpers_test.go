package ruler

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// clock is an injectable time.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *clock) Now() time.Time               { return time.Unix(0, c.ns.Load()) }
func (c *clock) Set(t time.Time)              { c.ns.Store(t.UnixNano()) }
func (c *clock) Add(d time.Duration)          { c.ns.Add(int64(d)) }
func (c *clock) At(d time.Duration) time.Time { return c.Now().Add(d) }

// capturePublisher records what is published, by topic.
type capturePublisher struct {
	mu   sync.Mutex
	msgs map[string][]*message.Message
	fail atomic.Bool
}

func newCapturePublisher() *capturePublisher {
	return &capturePublisher{msgs: map[string][]*message.Message{}}
}

func (p *capturePublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.fail.Load() {
		return context.DeadlineExceeded
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs[topic] = append(p.msgs[topic], msgs...)
	return nil
}

func (p *capturePublisher) Close() error { return nil }

func (p *capturePublisher) topic(name string) []*message.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*message.Message(nil), p.msgs[name]...)
}

// alerts decodes what was published to topic-alerts.
func (p *capturePublisher) alerts(t *testing.T) []Alert {
	var out []Alert
	for _, m := range p.topic(contract.TopicAlerts) {
		var a Alert
		require.NoError(t, json.Unmarshal(m.Payload, &a))
		out = append(out, a)
	}
	return out
}

// chanSource is a Source fed by the test: topic-alerts from a fixed list,
// topic-metrics from a channel after a fixed backlog.
type chanSource struct {
	alerts  [][]byte
	backlog []Record
	live    chan Record
}

func newChanSource() *chanSource { return &chanSource{live: make(chan Record, 1024)} }

func (c *chanSource) Consume(ctx context.Context, topic string, _ time.Time, handle func(Record), caughtUp func()) error {
	if topic == contract.TopicAlerts {
		for _, a := range c.alerts {
			handle(Record{Topic: topic, Value: a})
		}
		caughtUp()
		<-ctx.Done()
		return nil
	}
	for _, r := range c.backlog {
		handle(r)
	}
	caughtUp()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-c.live:
			handle(r)
		}
	}
}

// writeRules writes content as <dir>/<tenant>/<name>.
func writeRules(t *testing.T, dir, tenant, name, content string) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, tenant), 0o755))
	path := filepath.Join(dir, tenant, name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

func testConfig(rulesDir string) Config {
	cfg := DefaultConfig()
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.RulesDir = rulesDir
	cfg.RulesCheckInterval = 0
	cfg.Alerting.MinBackoff = 10 * time.Millisecond
	cfg.Alerting.MaxBackoff = 50 * time.Millisecond
	return cfg
}

type testService struct {
	*Service
	pub *capturePublisher
	src *chanSource
	reg *prometheus.Registry
}

func newTestService(t *testing.T, cfg Config, now func() time.Time) *testService {
	t.Helper()
	ts := &testService{pub: newCapturePublisher(), src: newChanSource(), reg: prometheus.NewRegistry()}
	s, err := New(cfg, Options{Publisher: ts.pub, Source: ts.src, Registry: ts.reg, Now: now})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ts.Service = s
	return ts
}

// start runs Execute until the test ends and waits for readiness.
func (ts *testService) start(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- ts.Execute() }()
	t.Cleanup(func() {
		ts.Interrupt(nil)
		require.NoError(t, <-done)
	})
	require.Eventually(t, ts.CaughtUp, 10*time.Second, time.Millisecond)
}

// group returns the only group of a tenant.
func (ts *testService) group(t *testing.T, tenant string) *groupRunner {
	t.Helper()
	var found *groupRunner
	for _, g := range ts.rules.Load().groups {
		if g.tenant == tenant {
			require.Nil(t, found, "one group for tenant %s", tenant)
			found = g
		}
	}
	require.NotNil(t, found, "group of tenant %s", tenant)
	return found
}

func (ts *testService) evaluations(tenant string, g *groupRunner, trigger string) float64 {
	return testutil.ToFloat64(ts.metrics.evaluations.WithLabelValues(tenant, g.group.File()+";"+g.name, trigger))
}

// record encodes one batch of one series as a topic-metrics record.
func record(tenant string, at time.Time, name string, value float64, extra ...string) Record {
	lbls := []samples.Label{{Name: "__name__", Value: name}}
	for i := 0; i+1 < len(extra); i += 2 {
		lbls = append(lbls, samples.Label{Name: extra[i], Value: extra[i+1]})
	}
	b := &samples.Batch{Tenant: tenant, Source: samples.SourceTMA, Series: []samples.Series{{
		Labels:  lbls,
		Samples: []samples.Sample{{TimestampMs: at.UnixMilli(), Value: value}},
	}}}
	return Record{
		Topic: contract.TopicMetrics,
		Value: samples.Encode(nil, b),
		Headers: map[string]string{
			contract.HeaderTenant:     tenant,
			contract.HeaderReceivedAt: itoa(at.UnixNano()),
		},
		Time: at,
	}
}

// drainAlerts publishes what the outbox holds (tests that do not Execute).
func (ts *testService) drainOutbox() {
	for {
		select {
		case m := <-ts.out.ch:
			_ = ts.pub.Publish(m.topic, m.msg)
		default:
			return
		}
	}
}

func decodeBatch(t *testing.T, payload []byte) *samples.Batch {
	t.Helper()
	b, err := samples.Decode(payload)
	require.NoError(t, err)
	return b
}

func labelPair(name, value string) samples.Label { return samples.Label{Name: name, Value: value} }

func mkRules(dir, tenant, content string) error {
	if err := os.MkdirAll(filepath.Join(dir, tenant), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, tenant, "rules.yml"), []byte(content), 0o644)
}
