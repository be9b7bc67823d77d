package alertbench

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	kafka "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/bus"
	natsbus "github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/bus/nats/natstest"
	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

func ds(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

func TestSummarize(t *testing.T) {
	in := ds(30, 10, 20, 50, 40)
	l := summarize(in, 2)
	require.Equal(t, Latency{N: 5, Missing: 2, P50: 30 * time.Millisecond, P90: 50 * time.Millisecond, P99: 50 * time.Millisecond, Max: 50 * time.Millisecond}, l)
	require.Equal(t, ds(30, 10, 20, 50, 40), in, "the input is not reordered")
	require.Equal(t, Latency{Missing: 3}, summarize(nil, 3))
}

func TestArrivals(t *testing.T) {
	a := newArrivals()
	ctx := context.Background()
	t0 := time.Unix(100, 0)
	a.mark("1", t0)
	a.mark("1", t0.Add(time.Second)) // a later notification of the same alert
	at, ok := a.await(ctx, "1", time.Second)
	require.True(t, ok)
	require.Equal(t, t0, at, "the first arrival counts")

	go func() {
		time.Sleep(10 * time.Millisecond)
		a.mark("2", t0)
	}()
	at, ok = a.await(ctx, "2", time.Minute)
	require.True(t, ok, "marked while waiting")
	require.Equal(t, t0, at)

	_, ok = a.await(ctx, "3", 10*time.Millisecond)
	require.False(t, ok, "never marked: times out")
}

func exampleRegistry(t *testing.T) *registry.File {
	f, err := registry.Load("../../../../examples/registry.yaml")
	require.NoError(t, err)
	return f
}

func TestMetricsOf(t *testing.T) {
	f := exampleRegistry(t)
	trial, others, err := metricsOf(f, 10)
	require.NoError(t, err)
	require.Equal(t, "cpu_usage_percent", trial)
	// 4 and 9 go out as events; 9 is an event description anyway.
	require.Equal(t, []string{"memory_used_bytes", "disk_free_bytes", "network_received_bytes_total",
		"load_average_1m", "temperature_celsius", "response_time_milliseconds", "requests_total"}, others)

	_, _, err = metricsOf(f, 1)
	require.ErrorContains(t, err, "no measurement descriptions")
	_, _, err = metricsOf(&registry.File{}, 10)
	require.ErrorContains(t, err, "description 0")
}

func testSpec() ruleSpec {
	res := make([]int64, 12)
	for i := range res {
		res[i] = 200000 + int64(i)
	}
	return ruleSpec{Rules: 111, PerGroup: 10, Threshold: 90, TrialMetric: "cpu_usage_percent",
		Metrics: []string{"memory_used_bytes", "disk_free_bytes", "requests_total"}, Resources: res}
}

// TestRulesFile parses the generated file as the ruler does (Prometheus's
// rulefmt and PromQL parser): the right number of rules and groups, the
// trial rule first with for: 0s, one resource per group.
func TestRulesFile(t *testing.T) {
	content := rulesFile(testSpec())
	rgs, errs := rulefmt.Parse(content, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	require.Len(t, rgs.Groups, 1+11)
	n := 0
	for _, g := range rgs.Groups {
		n += len(g.Rules)
	}
	require.Equal(t, 111, n)
	trial := rgs.Groups[0].Rules[0]
	require.Equal(t, trialAlert, trial.Alert)
	require.Equal(t, "cpu_usage_percent > 90", trial.Expr)
	require.Zero(t, trial.For)
	require.Len(t, rgs.Groups[1].Rules, 10)
	require.Len(t, rgs.Groups[11].Rules, 10)
	for _, r := range rgs.Groups[2].Rules {
		require.Contains(t, r.Expr, `resource_id="200001"`)
	}
	require.Equal(t, `avg_over_time(disk_free_bytes{resource_id="200000"}[1m]) > 1001`, rgs.Groups[1].Rules[1].Expr)

	scoped := testSpec()
	scoped.TrialScoped = true
	rgs, errs = rulefmt.Parse(rulesFile(scoped), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	require.Empty(t, errs)
	require.Equal(t, `cpu_usage_percent{resource_id=~"[0-9]{7,}"} > 90`, rgs.Groups[0].Rules[0].Expr)
}

// TestRulesFileForPrometheus checks the rule file and the Prometheus
// configuration with Debian's promtool (Prometheus 2.42), and the
// Alertmanager configuration with amtool.
func TestRulesFileForPrometheus(t *testing.T) {
	promtool := peertest.Binary(t, "promtool")
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yml")
	require.NoError(t, os.WriteFile(rules, rulesFile(testSpec()), 0o644))
	out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "111 rules found")

	for _, iv := range []time.Duration{time.Second, 100 * time.Millisecond} {
		cfg := filepath.Join(dir, "prometheus.yml")
		require.NoError(t, os.WriteFile(cfg, prometheusConfig(iv, rules, "127.0.0.1:9093"), 0o644))
		out, err = exec.Command(promtool, "check", "config", cfg).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}

	amtool := peertest.Binary(t, "amtool")
	am := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(am, alertmanagerConfig("http://127.0.0.1:1234/hook"), 0o644))
	out, err = exec.Command(amtool, "check-config", am).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

func TestConfigTexts(t *testing.T) {
	cfg := string(prometheusConfig(100*time.Millisecond, "/tmp/it's/rules.yml", "127.0.0.1:9093"))
	require.Contains(t, cfg, "evaluation_interval: 100ms\n")
	require.Contains(t, cfg, "- '/tmp/it''s/rules.yml'\n")
	require.Contains(t, cfg, "targets: ['127.0.0.1:9093']")
	am := string(alertmanagerConfig("http://h/hook"))
	require.Contains(t, am, "group_by: ['alertname', 'resource_id']")
	require.Contains(t, am, "group_wait: 0s")
	require.Equal(t, "1s", promDuration(time.Second))
	require.Equal(t, "1500ms", promDuration(1500*time.Millisecond))
}

func TestParseScopes(t *testing.T) {
	sc, err := parseScopes("every, trials,every-split, trials-split")
	require.NoError(t, err)
	require.Equal(t, []TmaflowShape{{}, {Scoped: true}, {Split: true}, {Scoped: true, Split: true}}, sc)
	_, err = parseScopes("all")
	require.ErrorContains(t, err, "want every or trials")
	_, err = parseScopes("split")
	require.ErrorContains(t, err, "want every or trials")
}

func TestParseIntervals(t *testing.T) {
	iv, err := parseIntervals("1s, 100ms,")
	require.NoError(t, err)
	require.Equal(t, []time.Duration{time.Second, 100 * time.Millisecond}, iv)
	_, err = parseIntervals("1x")
	require.Error(t, err)
	_, err = parseIntervals("100us")
	require.ErrorContains(t, err, "at least 1ms")
}

func TestValidate(t *testing.T) {
	valid := func() Config {
		var c Config
		fs := flagSet(&c)
		require.NoError(t, fs.Parse(nil))
		return c
	}
	c := valid()
	require.NoError(t, c.Validate())
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no tmaflow", func(c *Config) { c.TmaflowSource = "" }, "tmaflow.src"},
		{"too few resources for the groups", func(c *Config) { c.Resources = 50 }, "need 100 background resources"},
		{"threshold within the background", func(c *Config) { c.Threshold = 50 }, "above the background"},
		{"no rate", func(c *Config) { c.Rate = 0 }, "rate"},
		{"no trials", func(c *Config) { c.Trials = 0 }, "trials"},
		{"one data item", func(c *Config) { c.DataItems = 1 }, "data-items"},
		{"no intervals", func(c *Config) { c.Intervals = nil }, "intervals"},
		{"no tmaflow runs", func(c *Config) { c.TmaflowRuns = nil }, "trial-rule"},
		{"no bus", func(c *Config) { c.Buses = nil }, "bus"},
		{"background ids reach the trials'", func(c *Config) { c.FirstResource = 999_500 }, "below the trials' ids"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			require.ErrorContains(t, c.Validate(), tc.want)
		})
	}
}

func TestBusFlag(t *testing.T) {
	var c Config
	fs := flagSet(&c)
	require.NoError(t, fs.Parse(nil))
	require.Equal(t, []string{benchkit.BusKafka}, c.Buses, "kafka by default")
	require.NoError(t, fs.Parse([]string{"-bus=both"}))
	require.Equal(t, []string{benchkit.BusKafka, benchkit.BusNATS}, c.Buses)
	r := &Result{Name: "tmaflow on NATS", Bus: benchkit.BusNATS, Scoped: true}
	require.Equal(t, "tmaflow on NATS, rule on the trial series only", r.label())
	parts := byService(benchkit.BusNATS)
	require.Equal(t, "embedded NATS server (nats-server)", benchkit.Attribute([]string{"github.com/nats-io/nats-server/v2/server.(*stream).processJetStreamMsg"}, parts, true, "other"))
	require.Equal(t, "ruler (rule evaluation, its head, alert delivery)", benchkit.Attribute([]string{
		"github.com/nats-io/nats.go.(*Conn).publish", "github.com/tmaflow/tmaflow/services/ruler/ruler.(*sink).deliver"}, parts, true, "other"))
}

// TestReportSaturated notes a system that took less background load than
// offered.
func TestReportSaturated(t *testing.T) {
	cfg := Config{Rules: 10, Trials: 1, Rate: 1000, Resources: 10, DataItems: 10}
	kept := &Result{Name: "tmaflow", Bus: benchkit.BusKafka, Wall: 10 * time.Second, LoadSent: 10_000}
	behind := &Result{Name: "tmaflow on NATS", Bus: benchkit.BusNATS, Wall: 10 * time.Second, LoadSent: 7_000}
	var out strings.Builder
	printReport(&out, cfg, Report{Results: []*Result{kept, behind}})
	require.Contains(t, out.String(), "note: tmaflow on NATS, rule on every resource took 700 of the 1000 background messages/s offered")
	require.NotContains(t, out.String(), "note: tmaflow, rule")
}

func TestParseRuleCount(t *testing.T) {
	n, err := parseRuleCount(strings.NewReader(`{"status":"success","data":{"groups":[{"name":"a","rules":[{},{}]},{"name":"b","rules":[{}]}]}}`))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	_, err = parseRuleCount(strings.NewReader(`{"status":"error"}`))
	require.Error(t, err)
	_, err = parseRuleCount(strings.NewReader(`<html>`))
	require.Error(t, err)
}

func TestWebhookHandler(t *testing.T) {
	a := newArrivals()
	srv := httptest.NewServer(webhookHandler(a))
	defer srv.Close()
	body := `{"status":"firing","alerts":[
	  {"status":"firing","labels":{"alertname":"` + trialAlert + `","resource_id":"1000001"}},
	  {"status":"resolved","labels":{"alertname":"` + trialAlert + `","resource_id":"1000002"}},
	  {"status":"firing","labels":{"alertname":"Other","resource_id":"1000003"}}]}`
	resp, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	_, ok := a.await(context.Background(), "1000001", time.Second)
	require.True(t, ok)
	for _, id := range []string{"1000002", "1000003"} {
		_, ok = a.await(context.Background(), id, time.Millisecond)
		require.False(t, ok, id)
	}
	resp, err = http.Post(srv.URL, "application/json", strings.NewReader("{"))
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

// TestConsume reads topic-alerts and topic-metrics records from the
// embedded broker: from the end only what comes after the start, from the
// beginning everything.
func TestConsume(t *testing.T) {
	b, err := broker.Start(broker.Config{
		ListenAddress: "127.0.0.1:0", DataDir: t.TempDir(), Retention: time.Hour,
		RetentionBytes: -1, RetentionCheckInterval: time.Hour, Partitions: 2,
	}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(b.Close)
	addr := b.Addrs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, AllowAutoTopicCreation: true, RequiredAcks: kafka.RequireAll}
	defer func() { require.NoError(t, w.Close()) }()
	alert := func(id, state string) kafka.Message {
		return kafka.Message{Topic: "topic-alerts", Key: []byte(id),
			Value: []byte(`{"labels":{"alertname":"` + trialAlert + `","resource_id":"` + id + `"},"state":"` + state + `"}`)}
	}
	require.NoError(t, w.WriteMessages(ctx, alert("1", "firing")))
	batch := samples.Encode(nil, &samples.Batch{Tenant: "demo", Source: samples.SourceTMA, Series: []samples.Series{{
		Labels:  []samples.Label{{Name: "__name__", Value: "cpu_usage_percent"}, {Name: "resource_id", Value: "7"}},
		Samples: []samples.Sample{{TimestampMs: 1, Value: 2}},
	}}})
	require.NoError(t, w.WriteMessages(ctx, kafka.Message{Topic: "topic-metrics", Key: []byte("k"), Value: batch}))

	arr := newArrivals()
	stopAlerts, err := consume(ctx, addr, "topic-alerts", kafka.LastOffset, alertsFromTopic(arr))
	require.NoError(t, err)
	learner := newSeriesLearner()
	stopLearn, err := consume(ctx, addr, "topic-metrics", kafka.FirstOffset, learner.handle)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(learner.sets()) == 1 }, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, map[string]string{"__name__": "cpu_usage_percent", "resource_id": "7"}, learner.sets()[0])
	require.NoError(t, stopLearn())

	// The readers resolve the end offset when they first fetch: give
	// them a moment, as the benchmark's warm-up does.
	time.Sleep(time.Second)
	require.NoError(t, w.WriteMessages(ctx, alert("2", "resolved"), alert("3", "firing")))
	_, ok := arr.await(ctx, "3", 30*time.Second)
	require.True(t, ok)
	for _, id := range []string{"1", "2"} {
		_, ok := arr.await(ctx, id, time.Millisecond)
		require.False(t, ok, "alert %s: before the start or resolved", id)
	}
	require.NoError(t, stopAlerts())

	err = alertsFromTopic(arr)(bus.Record{Topic: "topic-alerts", Value: []byte("not json")}, time.Now())
	require.ErrorContains(t, err, "decode topic-alerts")
	err = learner.handle(bus.Record{Topic: "topic-metrics", Value: []byte("not avro")}, time.Now())
	require.ErrorContains(t, err, "decode topic-metrics")
}

// TestConsumeNATS reads topic-alerts and topic-metrics from a NATS
// server as TestConsume does from the broker: from the end only what
// comes after the start, from the beginning everything; a record the
// handler refuses ends the reading with its error.
func TestConsumeNATS(t *testing.T) {
	url := natstest.Start(t)
	pub, err := natsbus.NewPublisher(natstest.Config(url), nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, pub.Close()) }()
	send := func(topic, key string, value []byte) {
		m := message.NewMessage(watermill.NewUUID(), value)
		bus.SetKey(m, []byte(key))
		require.NoError(t, pub.Publish(topic, m))
	}
	alert := func(id, state string) []byte {
		return []byte(`{"labels":{"alertname":"` + trialAlert + `","resource_id":"` + id + `"},"state":"` + state + `"}`)
	}
	send("topic-alerts", "1", alert("1", "firing"))
	send("topic-metrics", "k", samples.Encode(nil, &samples.Batch{Tenant: "demo", Source: samples.SourceTMA, Series: []samples.Series{{
		Labels:  []samples.Label{{Name: "__name__", Value: "cpu_usage_percent"}, {Name: "resource_id", Value: "7"}},
		Samples: []samples.Sample{{TimestampMs: 1, Value: 2}},
	}}}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := benchkit.Bus{Kind: benchkit.BusNATS, Addr: strings.TrimPrefix(url, "nats://")}

	arr := newArrivals()
	refused := make(chan struct{})
	handle := alertsFromTopic(arr)
	stopAlerts, err := consumeBus(ctx, b, "topic-alerts", false, func(r bus.Record, at time.Time) error {
		err := handle(r, at)
		if err != nil {
			close(refused)
		}
		return err
	})
	require.NoError(t, err)
	learner := newSeriesLearner()
	stopLearn, err := consumeBus(ctx, b, "topic-metrics", true, learner.handle)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(learner.sets()) == 1 }, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, map[string]string{"__name__": "cpu_usage_percent", "resource_id": "7"}, learner.sets()[0])
	require.NoError(t, stopLearn())

	send("topic-alerts", "2", alert("2", "resolved"))
	send("topic-alerts", "3", alert("3", "firing"))
	_, ok := arr.await(ctx, "3", 30*time.Second)
	require.True(t, ok)
	for _, id := range []string{"1", "2"} {
		_, ok := arr.await(ctx, id, time.Millisecond)
		require.False(t, ok, "alert %s: before the start or resolved", id)
	}
	send("topic-alerts", "4", []byte("not json"))
	select {
	case <-refused:
	case <-ctx.Done():
		t.Fatal("the undecodable record did not arrive")
	}
	require.ErrorContains(t, stopAlerts(), "decode topic-alerts")
}
