package persister

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// TestIngestPartialBatch sends a batch of which the TSDB takes some
// samples: those are stored, the others reach topic-dlq grouped by reason
// with the contract headers, and the message is acknowledged.
func TestIngestPartialBatch(t *testing.T) {
	h := start(t, testConfig(t), Options{}, nil)
	h.publish(t, batch("acme", at(series("temp_celsius", "resource", "a"), 3*time.Hour, 1)))

	key := []byte("acme/a")
	b := batch("acme",
		at(series("temp_celsius", "resource", "a"), 0*time.Second, 5, 3*time.Hour+time.Minute, 2), // first too old
		at(series("temp_celsius", "resource", "b", "tenant", "evil"), 3*time.Hour, 7),             // wrong tenant
		at(series("hum_percent", "resource", "a"), 3*time.Hour, 40),
	)
	msg := message.NewMessage("m-1", samples.Encode(nil, b))
	msg.Metadata.Set(contract.HeaderTenant, "acme")
	msg.Metadata.Set(contract.HeaderReceivedAt, "123")
	bus.SetKey(msg, key)
	require.NoError(t, h.bus.Publish(contract.TopicMetrics, msg))

	got := stored(t, h.svc.db)
	require.Len(t, got[`{__name__="temp_celsius", resource="a", tenant="acme"}`], 2)
	require.Len(t, got[`{__name__="hum_percent", resource="a", tenant="acme"}`], 1)
	require.Len(t, got, 2, "the series of the other tenant is not stored")

	dead := h.dlq.published(contract.TopicDLQ)
	require.Len(t, dead, 2)
	// One record per reason, in reason order.
	for i, want := range []struct {
		reason string
		labels []samples.Label
		sample samples.Sample
	}{
		{reasonTenantMismatch, b.Series[1].Labels, samples.Sample{TimestampMs: ms(3 * time.Hour), Value: 7}},
		{reasonTooOld, b.Series[0].Labels, samples.Sample{TimestampMs: ms(0), Value: 5}},
	} {
		d := dead[i]
		require.Equal(t, key, bus.Key(d), "original key")
		require.Equal(t, "123", d.Metadata.Get(contract.HeaderReceivedAt), "original headers")
		require.Equal(t, contract.TopicMetrics, d.Metadata.Get(contract.HeaderSourceTopic))
		require.Equal(t, StageTSDB, d.Metadata.Get(contract.HeaderStage))
		require.Contains(t, d.Metadata.Get(contract.HeaderError), "persister rejected 1 samples ("+want.reason+")")
		rb, err := samples.Decode(d.Payload)
		require.NoError(t, err)
		require.Equal(t, "acme", rb.Tenant)
		require.Len(t, rb.Series, 1)
		require.Equal(t, want.labels, rb.Series[0].Labels)
		require.Equal(t, []samples.Sample{want.sample}, rb.Series[0].Samples)
	}
	require.Equal(t, 1.0, counter(t, h.svc.ingest.rejected[reasonTooOld]))
	require.Equal(t, 1.0, counter(t, h.svc.ingest.rejected[reasonTenantMismatch]))
	require.Equal(t, 2.0, counter(t, h.svc.ingest.samples[outcomeRejected]))
	require.Equal(t, 3.0, counter(t, h.svc.ingest.samples[outcomeAppended]))
}

// TestIngestUndecodable dead-letters records that are no sample batch, or
// whose tenant is missing or contradicts the header, whole and at once.
func TestIngestUndecodable(t *testing.T) {
	good := samples.Encode(nil, batch("acme", at(series("x"), 0*time.Second, 1)))
	tests := []struct {
		name    string
		payload []byte
		tenant  string
		wantErr string
	}{
		{"json", []byte(`{"probeId":1}`), "acme", "not an avro single-object record"},
		{"truncated", good[:len(good)-3], "acme", "truncated"},
		{"no tenant", samples.Encode(nil, batch("", at(series("x"), 0*time.Second, 1))), "", "sample batch has no tenant"},
		{"header mismatch", good, "other", `tenant header "other" differs from the batch tenant "acme"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, testConfig(t), Options{}, nil)
			msg := message.NewMessage(watermill.NewUUID(), tt.payload)
			msg.Metadata.Set(contract.HeaderTenant, tt.tenant)
			require.NoError(t, h.bus.Publish(contract.TopicMetrics, msg))
			dead := h.dlq.published(contract.TopicDLQ)
			require.Len(t, dead, 1)
			require.Equal(t, tt.payload, []byte(dead[0].Payload), "original bytes")
			require.Contains(t, dead[0].Metadata.Get(contract.HeaderError), tt.wantErr)
			require.Equal(t, StageTSDB, dead[0].Metadata.Get(contract.HeaderStage))
			require.Empty(t, stored(t, h.svc.db))
		})
	}
}

// TestIngestRetriesDeadLetterPublish: when topic-dlq cannot take the
// rejected samples the batch is handled again (not acknowledged), and
// once it can, the good samples are still stored exactly once.
func TestIngestRetriesDeadLetterPublish(t *testing.T) {
	cfg := testConfig(t)
	cfg.Bus.MaxRetries = 50
	cfg.Bus.InitialInterval = 5 * time.Millisecond
	cfg.Bus.MaxInterval = 5 * time.Millisecond
	dlq := &fakePublisher{}
	dlq.setErr(errors.New("broker down"))
	h := start(t, cfg, Options{Publisher: dlq}, nil)
	h.publish(t, batch("acme", at(series("x"), 3*time.Hour, 1)))

	go func() {
		time.Sleep(50 * time.Millisecond)
		dlq.setErr(nil)
	}()
	h.publish(t, batch("acme", at(series("x"), 0*time.Second, 9, 3*time.Hour+time.Second, 2)))
	require.Len(t, dlq.published(contract.TopicDLQ), 1)
	require.Equal(t, []samples.Sample{{TimestampMs: ms(3 * time.Hour), Value: 1}, {TimestampMs: ms(3*time.Hour + time.Second), Value: 2}},
		stored(t, h.svc.db)[`{__name__="x", tenant="acme"}`])
	require.Positive(t, gathered(t, h.reg, "tmaflow_bus_handler_retries_total", map[string]string{"handler": StageTSDB}))
}

func TestReadyAfterCatchUp(t *testing.T) {
	cfg := testConfig(t)
	lag := make(chan int64, 1)
	lag <- 5000
	h := start(t, cfg, Options{Lag: func(ctx context.Context) (int64, error) {
		select {
		case l := <-lag:
			lag <- l
			return l, nil
		default:
			return 0, errors.New("no lag")
		}
	}}, nil)
	require.Never(t, h.prober.IsReady, 100*time.Millisecond, 10*time.Millisecond)
	code, body := h.get(t, "", "/-/ready", nil)
	require.Equal(t, 503, code)
	require.Contains(t, body, "catching up: 5000 records behind topic-metrics")
	<-lag
	lag <- 10
	require.Eventually(t, h.prober.IsReady, 5*time.Second, 10*time.Millisecond)
	require.True(t, h.svc.CaughtUp())
	code, _ = h.get(t, "", "/-/healthy", nil)
	require.Equal(t, 200, code)
}

// failingDB fails the commits of its first appenders.
type failingDB struct {
	*tsdb.DB
	fails atomic.Int32
}

func (f *failingDB) Appender(ctx context.Context) storage.Appender {
	a := f.DB.Appender(ctx)
	if f.fails.Add(-1) >= 0 {
		return failingCommit{a}
	}
	return a
}

type failingCommit struct{ storage.Appender }

func (f failingCommit) Commit() error {
	return errors.Join(errors.New("write wal: no space left on device"), f.Rollback())
}

// TestIngestWaitsForTSDB: a failing TSDB commit is retried until it
// succeeds; the batch is neither acknowledged nor dead-lettered before.
func TestIngestWaitsForTSDB(t *testing.T) {
	cfg := testConfig(t)
	cfg.Bus.MaxRetries = 0
	h := start(t, cfg, Options{}, nil)
	db := &failingDB{DB: h.svc.db}
	db.fails.Store(3)
	h.svc.store.db = db
	h.publish(t, batch("acme", at(series("x"), 0*time.Second, 1, time.Second, 2)))
	require.Len(t, stored(t, h.svc.db)[`{__name__="x", tenant="acme"}`], 2)
	require.Empty(t, h.dlq.published(contract.TopicDLQ))
	require.Equal(t, 3.0, counter(t, h.svc.ingest.commitErrors))
	require.Equal(t, 2.0, counter(t, h.svc.ingest.samples[outcomeAppended]))
}

// BenchmarkHandleMetrics measures one topic-metrics record end to end in
// the handler: Avro decode, labels, TSDB append and commit.
func BenchmarkHandleMetrics(b *testing.B) {
	const nSeries, nSamples = 100, 10
	bt := &samples.Batch{Tenant: "acme", Source: samples.SourceTMA}
	for i := range nSeries {
		bt.Series = append(bt.Series, series("bench_value", "resource", strconv.Itoa(i), "site", "lab"))
	}
	var payloads [][]byte
	for i := range 1000 {
		for s := range bt.Series {
			bt.Series[s].Samples = bt.Series[s].Samples[:0]
			for j := range nSamples {
				bt.Series[s].Samples = append(bt.Series[s].Samples, samples.Sample{TimestampMs: int64(i*nSamples+j) * 1000, Value: float64(j)})
			}
		}
		payloads = append(payloads, samples.Encode(nil, bt))
	}
	benchHandle(b, payloads, nSeries*nSamples)
}

// BenchmarkHandleMetricsTMA measures the handler on what the labeler makes
// of one 20-observation TMA message: one batch of 20 series (the labeler's
// labels) with one sample each, as `make bench-pipeline` sends.
func BenchmarkHandleMetricsTMA(b *testing.B) {
	const nResources, nSeries, nPayloads = 256, 20, 1 << 15
	payloads := make([][]byte, nPayloads)
	bt := &samples.Batch{Tenant: "demo", Source: samples.SourceTMA}
	for i := range payloads {
		bt.Series = bt.Series[:0]
		for d := range nSeries {
			bt.Series = append(bt.Series, series("tma_measurement", "description_id", strconv.Itoa(d),
				"probe", "probe-python-demo", "resource_id", strconv.Itoa(101098+i%nResources), "tenant", "demo"))
			bt.Series[d].Samples = []samples.Sample{{TimestampMs: int64(i/nResources+1) * 10, Value: float64(i + d)}}
		}
		payloads[i] = samples.Encode(nil, bt)
	}
	benchHandle(b, payloads, nSeries)
}

// benchHandle passes the payloads to the handler in turn, starting over
// on a fresh TSDB when they run out (their timestamps start over too).
func benchHandle(b *testing.B, payloads [][]byte, samplesPerPayload int) {
	cfg := DefaultConfig()
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.TSDB.Path = b.TempDir()
	s, err := newService(cfg, Options{Subscriber: gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{}), Publisher: &fakePublisher{}}, nil)
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, s.Close()) })
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if i == len(payloads) {
			b.StopTimer()
			require.NoError(b, s.db.Close())
			cfg.TSDB.Path = b.TempDir()
			s.db, err = openTSDB(cfg.TSDB, nil, nil)
			require.NoError(b, err)
			s.store.db = s.db
			i = 0
			b.StartTimer()
		}
		if errs := s.handleMetrics(context.Background(), []*message.Message{message.NewMessage("m", payloads[i])}); errs != nil {
			b.Fatal(errs)
		}
		i++
	}
	b.ReportMetric(float64(b.N*samplesPerPayload)/b.Elapsed().Seconds(), "samples/s")
}
