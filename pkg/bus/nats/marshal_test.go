package nats

import (
	"slices"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

func TestMarshalRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		uuid     string
		key      []byte
		metadata message.Metadata
		encoded  string // HeaderEncoded on the wire
	}{
		{name: "no key, no uuid", metadata: message.Metadata{}},
		{name: "contract headers", uuid: "u-1", key: contract.ResourceKey(42),
			metadata: message.Metadata{contract.HeaderTenant: "acme", contract.HeaderSource: "http", contract.HeaderReceivedAt: "1700000000000000000"},
			encoded:  HeaderKey},
		{name: "empty key is a key", key: []byte{}, metadata: message.Metadata{}},
		{name: "printable key stays readable", key: []byte("acme/host-1"), metadata: message.Metadata{}},
		{name: "dead letter error with line breaks", metadata: message.Metadata{contract.HeaderError: "decode: line 1\r\nline 2", contract.HeaderStage: "labeler"},
			encoded: contract.HeaderError},
		{name: "leading blank and invalid utf-8", metadata: message.Metadata{"a": " x", "b": "\xff"}, encoded: "a,b"},
		{name: "unicode stays readable", metadata: message.Metadata{"unit": "°C µs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := message.NewMessage(tc.uuid, []byte("payload"))
			for k, v := range tc.metadata {
				in.Metadata.Set(k, v)
			}
			if tc.key != nil {
				bus.SetKey(in, tc.key)
			}
			nm, err := toNATS("tmaflow.t.0", in)
			require.NoError(t, err)
			require.Equal(t, tc.encoded, nm.Header.Get(HeaderEncoded))
			require.Equal(t, tc.uuid != "", nm.Header.Get(HeaderUUID) != "", "the uuid header only for a uuid")
			for k, v := range tc.metadata {
				if !slices.Contains(strings.Split(tc.encoded, ","), k) {
					require.Equal(t, v, nm.Header.Get(k), "plain NATS consumers read header %s as it is", k)
				}
			}

			out, err := fromNATS(wire(t, nm), nm.Data, "fallback")
			require.NoError(t, err)
			want := tc.uuid
			if want == "" {
				want = "fallback"
			}
			require.Equal(t, want, out.UUID)
			require.Equal(t, tc.key, bus.Key(out))
			require.Equal(t, "payload", string(out.Payload))
			delete(out.Metadata, bus.MetadataKey)
			require.Equal(t, tc.metadata, out.Metadata)
		})
	}
}

// wire sends h through NATS's header encoding and back.
func wire(t *testing.T, m *nats.Msg) nats.Header {
	t.Helper()
	// nats.go exports no encoder; a header line is "name: value\r\n"
	// after "NATS/1.0\r\n", ended by an empty line.
	raw := "NATS/1.0\r\n"
	for k, vs := range m.Header {
		for _, v := range vs {
			raw += k + ": " + v + "\r\n"
		}
	}
	h, err := nats.DecodeHeadersMsg([]byte(raw + "\r\n"))
	require.NoError(t, err)
	return h
}

func TestMarshalRejectsHeaderNames(t *testing.T) {
	for _, name := range []string{"a:b", "a,b", "with space", "tab\t", "Tmaflow-Key", "tmaflow-uuid", "Nats-Msg-Id", "nats-expected-stream", "\xff"} {
		t.Run(name, func(t *testing.T) {
			m := message.NewMessage("1", nil)
			m.Metadata.Set(name, "v")
			_, err := toNATS("s", m)
			require.ErrorIs(t, err, ErrHeaderName)
		})
	}
}

func TestFromNATSKeepsUndecodable(t *testing.T) {
	h := nats.Header{HeaderEncoded: {"error"}, "error": {"not base64!"}, "tenant": {"acme"}, "Nats-Msg-Id": {"x"}}
	m, err := fromNATS(h, []byte("p"), "u")
	require.ErrorContains(t, err, "header error")
	require.Equal(t, "not base64!", m.Metadata.Get("error"), "delivered as received, not dropped")
	require.Equal(t, "acme", m.Metadata.Get("tenant"))
	require.Empty(t, m.Metadata.Get("Nats-Msg-Id"), "the server's headers are not the record's")
}

func TestMsgID(t *testing.T) {
	mk := func(uuid, key, payload, tenant string) *nats.Msg {
		m := message.NewMessage(uuid, []byte(payload))
		bus.SetKey(m, []byte(key))
		m.Metadata.Set(contract.HeaderTenant, tenant)
		nm, err := toNATS("tmaflow.t.0", m)
		require.NoError(t, err)
		return nm
	}
	base := msgID(mk("", "k", "p", "a"))
	require.Len(t, base, 32)
	require.Equal(t, base, msgID(mk("", "k", "p", "a")), "a retried publish has the same id")
	other := mk("", "k", "p", "a")
	other.Subject = "tmaflow.t.3"
	require.Equal(t, base, msgID(other), "whatever partition a keyless retry lands on")
	for name, m := range map[string]*nats.Msg{
		"uuid":    mk("u", "k", "p", "a"),
		"key":     mk("", "k2", "p", "a"),
		"payload": mk("", "k", "p2", "a"),
		"header":  mk("", "k", "p", "b"),
	} {
		require.NotEqual(t, base, msgID(m), "a different %s is a different record", name)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ topic, stream, subject string }{
		{contract.TopicMetrics, "TMAFLOW_TOPIC_METRICS", "tmaflow.topic-metrics.3"},
		{contract.TopicDLQ, "TMAFLOW_TOPIC_DLQ", "tmaflow.topic-dlq.3"},
		{"a.b", "TMAFLOW_A_B_4LA3GS", "tmaflow.a_b_4la3gs.3"},
	} {
		ts := &topicStream{topic: tc.topic, token: token(tc.topic)}
		require.Equal(t, tc.stream, streamName(tc.topic))
		require.Equal(t, tc.subject, ts.subject(3))
	}
	require.NotEqual(t, token("a.b"), token("a_b"), "names that had to change never meet others")
	require.NotContains(t, token("a.b*>c d/e"), ".")
	require.Equal(t, "labeler_p2", consumerName("labeler", 2))
}

// Keys land where Kafka's Java client puts them, as on the Kafka adapter:
// toPositive(murmur2(key)) % partitions, murmur2 vectors from Kafka's
// UtilsTest.
func TestJavaCompatiblePartitioning(t *testing.T) {
	ts := &topicStream{partitions: 8, ids: []int{0, 1, 2, 3, 4, 5, 6, 7}}
	for k, h := range map[string]int32{
		"21":                       -973932308,
		"foobar":                   -790332482,
		"a-little-bit-long-string": -985981536,
		"abc":                      479470107,
	} {
		require.Equal(t, int(h&0x7fffffff)%8, ts.partition([]byte(k)), "key %q", k)
	}
	for range 100 {
		require.Less(t, ts.partition(nil), 8)
	}
}

// FuzzFromNATS: any header block the server hands over decodes without a
// panic, and what toNATS makes of the result decodes back to it.
func FuzzFromNATS(f *testing.F) {
	f.Add("NATS/1.0\r\nTmaflow-Key: AAAAAAAAACo=\r\nTmaflow-Encoded: Tmaflow-Key\r\ntenant: acme\r\n\r\n", []byte("p"))
	f.Add("NATS/1.0\r\nerror: bm8=\r\nTmaflow-Encoded: error,x\r\n\r\n", []byte{})
	f.Add("NATS/1.0\r\nTmaflow-Uuid: u\r\nNats-Msg-Id: 1\r\n\r\n", []byte("x"))
	f.Fuzz(func(t *testing.T, raw string, data []byte) {
		h, err := nats.DecodeHeadersMsg([]byte(raw))
		if err != nil {
			return
		}
		m, _ := fromNATS(h, data, "u")
		// Names a header line cannot carry back are refused, not mangled.
		nm, err := toNATS("s", m)
		if err != nil {
			require.ErrorIs(t, err, ErrHeaderName)
			return
		}
		back, err := fromNATS(wire(t, nm), nm.Data, "other")
		require.NoError(t, err)
		require.Equal(t, m.UUID, back.UUID)
		require.Equal(t, m.Metadata, back.Metadata)
		require.Equal(t, []byte(m.Payload), []byte(back.Payload))
	})
}
