package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka/kafkatest"
	"github.com/tmaflow/tmaflow/pkg/peertest"
)

func TestCompressionValidate(t *testing.T) {
	for _, tc := range []struct {
		codec   string
		wantErr string
	}{
		{codec: "none"}, {codec: "gzip"}, {codec: "snappy"}, {codec: "lz4"}, {codec: "zstd"},
		{codec: "", wantErr: `kafka.compression must be one of none, gzip, snappy, lz4, zstd, got ""`},
		{codec: "LZ4", wantErr: `kafka.compression must be one of none, gzip, snappy, lz4, zstd, got "LZ4"`},
		{codec: "uncompressed", wantErr: `got "uncompressed"`},
		{codec: "3", wantErr: `got "3"`},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			cfg := kafka.DefaultConfig()
			cfg.Compression = tc.codec
			err := cfg.Validate()
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
	require.Equal(t, kafka.DefaultCompression, kafka.DefaultConfig().Compression)
}

// startBroker starts the embedded broker of tmaflow, with its flag
// defaults, on dir.
func startBroker(t *testing.T, dir string) *broker.Broker {
	t.Helper()
	var cfg broker.Config
	cfg.RegisterFlags(flag.NewFlagSet("broker", flag.ContinueOnError))
	cfg.ListenAddress, cfg.DataDir, cfg.Partitions = "127.0.0.1:0", dir, 2
	b, err := broker.Start(cfg, testLogger(t))
	require.NoError(t, err)
	t.Cleanup(b.Close)
	return b
}

// produceWith is each produce path of the publisher: the sender (no batch
// timeout, the default) and kafka-go's Writer.
var produceWith = []struct {
	name         string
	batchTimeout time.Duration
}{{"sender", 0}, {"writer", 5 * time.Millisecond}}

// compressionMessages are the messages of the round trip: TMA records as
// the monitor publishes them (binary key, contract headers, no UUID),
// Watermill messages with a UUID and no key, a large repetitive payload
// and an incompressible one.
func compressionMessages(n int) []*message.Message {
	rng := rand.New(rand.NewPCG(uint64(n), 19))
	var msgs []*message.Message
	for i := range n {
		m := monitorRecord(int64(i))
		m.Payload = bytes.Replace(payload, []byte(`"messageId":0`), fmt.Appendf(nil, `"messageId":%d`, i), 1)
		msgs = append(msgs, m)
	}
	wm := message.NewMessage("uuid-"+strconv.Itoa(n), []byte("plain watermill message"))
	wm.Metadata.Set("k", "v")
	large := message.NewMessage("", bytes.Repeat(payload, 100))
	bus.SetKey(large, []byte("large"))
	random := message.NewMessage("", make([]byte, 10_000))
	for i := range random.Payload {
		random.Payload[i] = byte(rng.UintN(256))
	}
	bus.SetKey(random, []byte{0, 1, 2, 255})
	return append(msgs, wm, large, random)
}

// publishAll publishes msgs to topic: most in one call, so the records of
// a partition share a batch, the rest one by one.
func publishAll(t *testing.T, pub *kafka.Publisher, topic string, msgs []*message.Message) {
	t.Helper()
	split := len(msgs) * 2 / 3
	require.NoError(t, pub.Publish(topic, msgs[:split]...))
	for _, m := range msgs[split:] {
		require.NoError(t, pub.Publish(topic, m))
	}
}

// recordOf is what a consumer must see of a message: payload, key and
// headers (metadata), and the Watermill UUID when it had one (the
// subscriber names the others by their position).
type recordOf struct {
	UUID     string
	Payload  string
	Metadata message.Metadata
}

func recordsOf(msgs []*message.Message) map[string]recordOf {
	out := make(map[string]recordOf, len(msgs))
	for _, m := range msgs {
		out[string(m.Payload)] = recordOf{UUID: m.UUID, Payload: string(m.Payload), Metadata: m.Metadata}
	}
	return out
}

// TestCompressionRoundTrip publishes with every codec on both produce
// paths into the embedded broker and reads back with the subscriber: the
// broker keeps the batches compressed with that codec, across a restart,
// and consumers get every payload, key and header byte for byte.
func TestCompressionRoundTrip(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir)
	sent := map[string]map[string]recordOf{} // topic → payload → record
	codecOf := map[string]string{}           // topic → stored codec name
	for _, path := range produceWith {
		for _, codec := range kafka.Compressions() {
			topic := "compression-" + path.name + "-" + codec
			t.Run(path.name+"/"+codec, func(t *testing.T) {
				cfg := testConfig(b.Addrs())
				cfg.Compression = codec
				cfg.BatchTimeout = path.batchTimeout
				cfg.Partitions = 2
				pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
				require.NoError(t, err)
				msgs := compressionMessages(20)
				publishAll(t, pub, topic, msgs)
				require.NoError(t, pub.Close())
				sent[topic] = recordsOf(msgs)
				codecOf[topic] = storedName(codec)

				sub, ch := subscribe(t, cfg, nil, topic)
				defer func() { require.NoError(t, sub.Close()) }()
				got := map[string]recordOf{}
				for range msgs {
					m := receive(t, ch)
					r := recordOf{Payload: string(m.Payload), Metadata: m.Metadata}
					if sent[topic][r.Payload].UUID != "" {
						r.UUID = m.UUID
					}
					got[r.Payload] = r
					m.Ack()
				}
				require.Equal(t, sent[topic], got)
				requireStored(t, b.Addrs()[0], topic, codecOf[topic])
			})
		}
	}

	// The data dir keeps the batches as they were produced.
	b.Close()
	b = startBroker(t, dir)
	for topic, want := range sent {
		requireStored(t, b.Addrs()[0], topic, codecOf[topic])
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		recs, err := brokertest.ReadAll(ctx, b.Addrs()[0], topic)
		cancel()
		require.NoError(t, err)
		require.Len(t, recs, len(want))
		for _, r := range recs {
			w, ok := want[string(r.Value)]
			require.True(t, ok, "%s: unexpected record %.60q", topic, r.Value)
			require.Equal(t, w.Metadata[bus.MetadataKey], string(r.Key), topic)
		}
	}
}

// storedName is how kafka-go names a codec in a batch's attributes.
func storedName(codec string) string {
	if codec == kafka.CompressionNone {
		return "uncompressed"
	}
	return codec
}

// requireStored checks that every batch of topic is stored with codec.
func requireStored(t *testing.T, addr, topic, codec string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	codecs, err := kafkatest.BatchCodecs(ctx, addr, topic)
	require.NoError(t, err)
	require.NotEmpty(t, codecs)
	require.Equal(t, slices.Repeat([]string{codec}, len(codecs)), codecs, "codecs of the batches of %s", topic)
}

// TestKcatReadsCompressed has kcat (librdkafka, the C client most tools
// build on) read what each codec produced: payloads byte for byte, keys and
// headers.
func TestKcatReadsCompressed(t *testing.T) {
	peertest.Binary(t, "kcat")
	b := startBroker(t, t.TempDir())
	addr := b.Addrs()[0]
	for _, path := range produceWith {
		for _, codec := range kafka.Compressions() {
			t.Run(path.name+"/"+codec, func(t *testing.T) {
				topic := "kcat-" + path.name + "-" + codec
				cfg := testConfig(b.Addrs())
				cfg.Compression = codec
				cfg.BatchTimeout = path.batchTimeout
				cfg.Partitions = 1 // one partition: kcat prints the records in order
				pub, err := kafka.NewPublisher(cfg, testLogger(t), nil)
				require.NoError(t, err)
				msgs := compressionMessages(10)
				publishAll(t, pub, topic, msgs)
				require.NoError(t, pub.Close())
				requireStored(t, addr, topic, storedName(codec))

				var want []byte
				for _, m := range msgs {
					want = append(want, m.Payload...)
				}
				got := kafkatest.Kcat(t, "-C", "-b", addr, "-t", topic, "-f", "%s", "-o", "beginning", "-e", "-q")
				require.True(t, bytes.Equal(want, got), "kcat read %d bytes, published %d", len(got), len(want))

				// Keys and headers, in kcat's JSON envelope.
				out := kafkatest.Kcat(t, "-C", "-b", addr, "-t", topic, "-J", "-o", "beginning", "-e", "-q")
				lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
				require.Len(t, lines, len(msgs))
				for i, line := range lines {
					var rec struct {
						Key     *string  `json:"key"`
						Headers []string `json:"headers"`
					}
					require.NoError(t, json.Unmarshal(line, &rec), string(line))
					wantHeaders := map[string]string{}
					for k, v := range msgs[i].Metadata {
						if k != bus.MetadataKey {
							wantHeaders[k] = v
						}
					}
					if msgs[i].UUID != "" {
						wantHeaders[kafka.HeaderUUID] = msgs[i].UUID
					}
					gotHeaders := map[string]string{}
					for j := 0; j+1 < len(rec.Headers); j += 2 {
						gotHeaders[rec.Headers[j]] = rec.Headers[j+1]
					}
					require.Equal(t, wantHeaders, gotHeaders, "record %d", i)
					if key, ok := msgs[i].Metadata[bus.MetadataKey]; ok && isPrintable(key) {
						require.NotNil(t, rec.Key, "record %d", i)
						require.Equal(t, key, *rec.Key, "record %d", i)
					}
				}
			})
		}
	}
}

func isPrintable(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
