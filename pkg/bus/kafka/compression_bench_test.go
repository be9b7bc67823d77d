package kafka

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

// The records BenchmarkCompression measures codecs on: what the pipeline
// produces for one probe request of 20 observations (tmaload's default:
// 20 data items of one observation, every fifth an event), on
// topic-monitor and, labelled, on topic-metrics. Values are random walks
// with a few decimals, as real gauges are, not constants that compress to
// nothing.

// descriptionNames name the series of description ids 0..9, as a registry
// does (the labeler's names, units and help text).
var descriptionNames = []struct{ name, unit, help string }{
	{"cpu_usage_percent", "percent", "CPU time used, in percent of one core."},
	{"memory_used_bytes", "bytes", "Resident memory in use."},
	{"disk_free_bytes", "bytes", "Free space of the root file system."},
	{"network_received_bytes_total", "bytes", "Bytes received on all interfaces since boot."},
	{"network_sent_bytes_total", "bytes", "Bytes sent on all interfaces since boot."},
	{"load_average", "", "One-minute load average."},
	{"temperature_celsius", "celsius", "Temperature of the CPU package."},
	{"processes", "", "Processes running."},
	{"response_time_seconds", "seconds", "Latency of the health check."},
	{"restart_event", "", "A service restarted."},
}

// corpus generates the records of consecutive probe requests.
type corpus struct {
	rng   *rand.Rand
	value []float64 // the random walk of each description
	next  int64     // message id
	now   time.Time
}

func newCorpus() *corpus {
	c := &corpus{rng: rand.New(rand.NewPCG(1, 2)), now: time.Unix(1_765_000_000, 0)}
	for range 20 {
		c.value = append(c.value, 1000*c.rng.Float64())
	}
	return c
}

// message returns the next TMA message, of one of 200 resources.
func (c *corpus) message() *tma.Message {
	c.next++
	c.now = c.now.Add(500 * time.Microsecond)
	m := &tma.Message{ProbeID: 7, ResourceID: 101000 + c.rng.Int64N(200), MessageID: c.next, SentTime: c.now.Unix()}
	for d := range 20 {
		c.value[d] += c.rng.NormFloat64()
		typ := tma.Measurement
		if d%5 == 4 {
			typ = tma.Event
		}
		v, _ := strconv.ParseFloat(strconv.FormatFloat(c.value[d], 'f', c.rng.IntN(4)+1, 64), 64)
		m.Data = append(m.Data, tma.Data{DescriptionID: int64(d % 10), Type: typ,
			Observations: []tma.Observation{{Time: c.now.Unix() - int64(c.rng.IntN(2)), Value: v}}})
	}
	return m
}

// monitorRecord is m as the monitor produces it to topic-monitor.
func (c *corpus) monitorRecord(m *tma.Message) kafka.Message {
	value, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return kafka.Message{
		Topic: contract.TopicMonitor, Key: contract.ResourceKey(m.ResourceID), Value: value, Time: c.now,
		Headers: []kafka.Header{
			{Key: contract.HeaderTenant, Value: []byte("demo")},
			{Key: contract.HeaderSource, Value: []byte(contract.SourceHTTP)},
			{Key: contract.HeaderReceivedAt, Value: strconv.AppendInt(nil, c.now.UnixNano(), 10)},
			{Key: contract.HeaderContentType, Value: []byte(contract.ContentTypeTMA)},
		},
	}
}

// metricsRecord is m as the labeler produces it to topic-metrics: one
// series per data item, labelled from the registry.
func (c *corpus) metricsRecord(m *tma.Message) kafka.Message {
	resource := "host-" + strconv.FormatInt(m.ResourceID, 10)
	b := samples.Batch{Tenant: "demo", Source: samples.SourceTMA}
	for _, d := range m.Data {
		desc := descriptionNames[d.DescriptionID]
		name := desc.name
		if d.Type == tma.Event && d.DescriptionID != 9 {
			name += "_event"
		}
		b.Series = append(b.Series, samples.Series{
			Labels: []samples.Label{
				{Name: "__name__", Value: name},
				{Name: "owner", Value: "ops"},
				{Name: "probe", Value: "probe-edge-7"},
				{Name: "resource", Value: resource},
				{Name: "resource_id", Value: strconv.FormatInt(m.ResourceID, 10)},
				{Name: "site", Value: "lab"},
				{Name: "tenant", Value: "demo"},
			},
			Samples:  []samples.Sample{{TimestampMs: tma.Time(d.Observations[0].Time).UnixMilli(), Value: d.Observations[0].Value}},
			Metadata: &samples.Metadata{Type: samples.Gauge, Unit: desc.unit, Help: desc.help},
		})
	}
	return kafka.Message{
		Topic: contract.TopicMetrics, Key: samples.MetricsKey("demo", resource), Value: samples.Encode(nil, &b), Time: c.now,
		Headers: []kafka.Header{
			{Key: contract.HeaderTenant, Value: []byte("demo")},
			{Key: contract.HeaderReceivedAt, Value: strconv.AppendInt(nil, c.now.UnixNano(), 10)},
		},
	}
}

// corpusRecords returns n records of topic for one partition's batch.
func corpusRecords(topic string, n int) []kafka.Message {
	c := newCorpus()
	out := make([]kafka.Message, n)
	for i := range out {
		m := c.message()
		if topic == contract.TopicMonitor {
			out[i] = c.monitorRecord(m)
		} else {
			out[i] = c.metricsRecord(m)
		}
	}
	return out
}

// encodeBatch is the record batch the sender puts into a produce request
// for msgs, as the broker stores it.
func encodeBatch(s *sender, msgs []kafka.Message) ([]byte, error) {
	records := make([]kafka.Record, len(msgs))
	for i := range msgs {
		records[i] = produceRecord(&msgs[i])
	}
	rs := s.recordSet(records)
	rs.Version = 2 // what Produce v3+ sends
	var buf bytes.Buffer
	if _, err := rs.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("encode record batch: %w", err)
	}
	return buf.Bytes(), nil
}

// decodeBatch reads every record of batch as a consumer does and returns
// the bytes of their values.
func decodeBatch(batch []byte) (int, error) {
	var rs protocol.RecordSet
	if _, err := rs.ReadFrom(bytes.NewReader(batch)); err != nil {
		return 0, fmt.Errorf("decode record batch: %w", err)
	}
	n := 0
	for {
		r, err := rs.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read record: %w", err)
		}
		v, err := io.ReadAll(r.Value)
		if err != nil {
			return n, fmt.Errorf("read value: %w", err)
		}
		n += len(v)
	}
}

// BenchmarkCompression measures each codec on our records at the batch
// sizes the sender sends (1 record per partition under light load, 10–100
// under heavy load): bytes of the record batch per record, as sent and as
// the broker stores it (B/record), the value bytes they carry
// (value-B/record), and the CPU to compress (op=produce) or decompress and
// read (op=consume) one record (ns/record).
//
//	go test -run '^$' -bench Compression ./pkg/bus/kafka/
func BenchmarkCompression(b *testing.B) {
	for _, topic := range []string{contract.TopicMonitor, contract.TopicMetrics} {
		for _, n := range []int{1, 10, 100} {
			msgs := corpusRecords(topic, n)
			values := 0
			for _, m := range msgs {
				values += len(m.Value)
			}
			for _, codec := range append(Compressions(), zstdLevel3) {
				s := newSender(nil, Config{Compression: strings.TrimSuffix(codec, "-kafka-go")}, nil)
				restore := useCodecOf(codec)
				batch, err := encodeBatch(s, msgs)
				require.NoError(b, err)
				report := func(b *testing.B) {
					b.ReportMetric(float64(len(batch))/float64(n), "B/record")
					b.ReportMetric(float64(values)/float64(n), "value-B/record")
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
				}
				name := fmt.Sprintf("topic=%s/batch=%d/codec=%s", topic, n, codec)
				b.Run(name+"/op=produce", func(b *testing.B) {
					for b.Loop() {
						if _, err := encodeBatch(s, msgs); err != nil {
							b.Fatal(err)
						}
					}
					report(b)
				})
				b.Run(name+"/op=consume", func(b *testing.B) {
					for b.Loop() {
						if got, err := decodeBatch(batch); err != nil || got != values {
							b.Fatalf("decoded %d value bytes, want %d: %v", got, values, err)
						}
					}
					report(b)
				})
				restore()
			}
		}
	}
}

// zstdLevel3 names kafka-go's own zstd codec (level 3, 8 MiB window) in
// BenchmarkCompression, beside ours.
const zstdLevel3 = CompressionZstd + "-kafka-go"

// useCodecOf puts kafka-go's zstd codec in its codec table for
// zstdLevel3 and returns what puts ours back.
func useCodecOf(name string) (restore func()) {
	if name != zstdLevel3 {
		return func() {}
	}
	ours := compress.Codecs[compress.Zstd]
	compress.Codecs[compress.Zstd] = &compress.ZstdCodec
	return func() { compress.Codecs[compress.Zstd] = ours }
}

// TestCompressedBatchDecodes checks the benchmark's batches: every codec's
// batch carries the records unchanged, and compresses our records.
func TestCompressedBatchDecodes(t *testing.T) {
	for _, topic := range []string{contract.TopicMonitor, contract.TopicMetrics} {
		msgs := corpusRecords(topic, 100)
		plain, err := encodeBatch(newSender(nil, Config{Compression: CompressionNone}, nil), msgs)
		require.NoError(t, err)
		for _, codec := range Compressions() {
			t.Run(topic+"/"+codec, func(t *testing.T) {
				batch, err := encodeBatch(newSender(nil, Config{Compression: codec}, nil), msgs)
				require.NoError(t, err)
				var rs protocol.RecordSet
				_, err = rs.ReadFrom(bytes.NewReader(batch))
				require.NoError(t, err)
				require.Equal(t, mustCodec(t, codec), rs.Attributes.Compression())
				for i := range msgs {
					r, err := rs.Records.ReadRecord()
					require.NoError(t, err)
					key, err := io.ReadAll(r.Key)
					require.NoError(t, err)
					value, err := io.ReadAll(r.Value)
					require.NoError(t, err)
					require.Equal(t, msgs[i].Key, key)
					require.Equal(t, msgs[i].Value, value)
					require.Equal(t, msgs[i].Headers, r.Headers)
				}
				if codec != CompressionNone {
					require.Less(t, len(batch), len(plain)/2, "%s batch of 100 records", codec)
				}
			})
		}
	}
}

func mustCodec(t *testing.T, name string) kafka.Compression {
	t.Helper()
	c, err := parseCompression(name)
	require.NoError(t, err)
	return c
}
