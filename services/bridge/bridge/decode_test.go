package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// decodeTopic routes and decodes one payload of the fixture mapping.
func decodeTopic(t testing.TB, tenant, topic string, payload []byte, probeID int64) (decoded, error) {
	t.Helper()
	m, err := LoadMapping("testdata/mapping.yaml")
	require.NoError(t, err)
	p := &pipeline{}
	p.mapping.Store(m)
	return p.decode(inbound{tenant: tenant, topic: topic, probeID: probeID, payload: payload, received: time.UnixMilli(1_700_000_000_000)})
}

// batches decodes the sample batches of records.
func batches(t *testing.T, d decoded) []samples.Batch {
	t.Helper()
	require.Equal(t, contract.TopicSamples, d.topic)
	require.NotNil(t, d.samples)
	var out []samples.Batch
	for _, m := range d.samples.build() {
		var dec samples.Decoder
		b, err := dec.Decode(m.Payload)
		require.NoError(t, err)
		out = append(out, *b)
	}
	return out
}

func TestDecodeFormats(t *testing.T) {
	const now = 1_700_000_000_000
	for _, tc := range []struct {
		name, topic, payload string
		want                 []samples.Series
	}{
		{"number from topic levels", "acme/sites/s1/devices/d7/metrics/temperature", " 21.5\n",
			[]samples.Series{{Labels: []samples.Label{{Name: "__name__", Value: "temperature"}, {Name: "device", Value: "d7"}, {Name: "job", Value: "mqtt"}, {Name: "site", Value: "s1"}},
				Samples: []samples.Sample{{TimestampMs: now, Value: 21.5}}, Metadata: &samples.Metadata{Type: samples.Gauge}}}},
		{"boolean number", "acme/sites/s1/devices/d7/metrics/door_open", "true",
			[]samples.Series{{Labels: []samples.Label{{Name: "__name__", Value: "door_open"}, {Name: "device", Value: "d7"}, {Name: "job", Value: "mqtt"}, {Name: "site", Value: "s1"}},
				Samples: []samples.Sample{{TimestampMs: now, Value: 1}}, Metadata: &samples.Metadata{Type: samples.Gauge}}}},
		{"prometheus text with topic labels", "acme/sites/s1/devices/d7/prom", "# TYPE up gauge\nup 1 1600000000000\n",
			[]samples.Series{{Labels: []samples.Label{{Name: "__name__", Value: "up"}, {Name: "device", Value: "d7"}, {Name: "site", Value: "s1"}},
				Samples: []samples.Sample{{TimestampMs: 1600000000000, Value: 1}}, Metadata: &samples.Metadata{Type: samples.Gauge}}}},
		{"openmetrics", "acme/sites/s1/devices/d7/om", "# TYPE c counter\nc_total 3\n# EOF\n",
			[]samples.Series{{Labels: []samples.Label{{Name: "__name__", Value: "c_total"}, {Name: "device", Value: "d7"}, {Name: "site", Value: "s1"}},
				Samples: []samples.Sample{{TimestampMs: now, Value: 3}}, Metadata: &samples.Metadata{Type: samples.Counter}}}},
		{"json fields", "acme/sensors/d9", `{"temperature": 20.25, "power": {"total": "1500"}, "other": "x"}`,
			[]samples.Series{
				{Labels: []samples.Label{{Name: "__name__", Value: "temperature_celsius"}, {Name: "device", Value: "d9"}, {Name: "job", Value: "sensors"}, {Name: "unit", Value: "celsius"}},
					Samples: []samples.Sample{{TimestampMs: now, Value: 20.25}}, Metadata: &samples.Metadata{Type: samples.Gauge}},
				{Labels: []samples.Label{{Name: "__name__", Value: "energy_wh_total"}, {Name: "device", Value: "d9"}, {Name: "job", Value: "sensors"}},
					Samples: []samples.Sample{{TimestampMs: now, Value: 1500}}, Metadata: &samples.Metadata{Type: samples.Counter}},
			}},
		{"json missing field skipped", "acme/sensors/d9", `{"temperature": 19}`,
			[]samples.Series{{Labels: []samples.Label{{Name: "__name__", Value: "temperature_celsius"}, {Name: "device", Value: "d9"}, {Name: "job", Value: "sensors"}, {Name: "unit", Value: "celsius"}},
				Samples: []samples.Sample{{TimestampMs: now, Value: 19}}, Metadata: &samples.Metadata{Type: samples.Gauge}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := decodeTopic(t, "acme", tc.topic, []byte(tc.payload), -1)
			require.NoError(t, err)
			var got []samples.Series
			for _, b := range batches(t, d) {
				require.Equal(t, "acme", b.Tenant)
				require.Equal(t, samples.SourceMQTT, b.Source)
				got = append(got, b.Series...)
			}
			require.Equal(t, tc.want, got)
			for _, m := range d.samples.build() {
				require.Equal(t, tc.topic, m.Metadata[contract.HeaderMQTTTopic])
				require.Equal(t, contract.SourceMQTT, m.Metadata[contract.HeaderSource])
				require.Equal(t, "acme", m.Metadata[contract.HeaderTenant])
			}
		})
	}
}

func TestDecodeTMAByteForByte(t *testing.T) {
	msg := `{"probeId":1,"resourceId":101,"messageId":0,"sentTime":1535971455,"data":[{"descriptionId":0,"type":"measurement","observations":[{"time":1535971455,"value":42}]}]}`
	d, err := decodeTopic(t, "acme", "acme/tma/host1", []byte(msg), 1)
	require.NoError(t, err)
	require.Equal(t, contract.TopicMonitor, d.topic)
	require.Len(t, d.records, 1)
	require.Equal(t, msg, string(d.records[0].Payload))
	require.Equal(t, string(contract.ResourceKey(101)), d.records[0].Metadata["_key"])
	require.Equal(t, "acme/tma/host1", d.records[0].Metadata[contract.HeaderMQTTTopic])
}

func TestDecodeRefuses(t *testing.T) {
	tma := `{"probeId":2,"resourceId":101,"messageId":0,"sentTime":1535971455,"data":[{"descriptionId":0,"type":"measurement","observations":[{"time":1535971455,"value":42}]}]}`
	for _, tc := range []struct{ name, tenant, topic, payload, want string }{
		{"not a number", "acme", "acme/sites/s/devices/d/metrics/t", "warm", `"warm" is not a number`},
		{"empty metric name from topic", "acme", "acme/sites/s/devices/d/metrics/", "1", "no metric name"},
		{"bad text", "acme", "acme/sites/s/devices/d/prom", "up{", "parse prometheus text"},
		{"empty text", "acme", "acme/sites/s/devices/d/prom", "", "no samples"},
		{"json not object", "acme", "acme/sensors/d", "[1]", "decode json"},
		{"json no field", "acme", "acme/sensors/d", `{"x":1}`, "none of the configured fields"},
		{"json field not number", "acme", "acme/sensors/d", `{"temperature":{"a":1}}`, "is not a number"},
		{"tma invalid", "acme", "acme/tma/x", `{"probeId":1}`, "decode tma"},
		{"tma foreign probe", "acme", "acme/tma/x", tma, "not the authenticated probe 1"},
		{"no route", "acme", "acme/unknown", "1", errNoRoute.Error()},
		{"no tenant", "gamma", "gamma/x", "1", errNoRoute.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeTopic(t, tc.tenant, tc.topic, []byte(tc.payload), 1)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDeadLetter(t *testing.T) {
	in := inbound{tenant: "acme", topic: "acme/x", payload: []byte("bad"), received: time.Unix(0, 5)}
	d := deadLetter(in, errNoRoute)
	require.Equal(t, contract.TopicDLQ, d.topic)
	m := d.records[0]
	require.Equal(t, "bad", string(m.Payload))
	require.Equal(t, errNoRoute.Error(), m.Metadata[contract.HeaderError])
	require.Equal(t, "acme/x", m.Metadata[contract.HeaderSourceTopic])
	require.Equal(t, Stage, m.Metadata[contract.HeaderStage])
	require.Equal(t, "acme", m.Metadata[contract.HeaderTenant])
}

// FuzzDecode feeds arbitrary payloads to every route of the fixture
// mapping: each either decodes into records or returns an error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"1", "-Inf", "true", `{"temperature": 1}`, "up 1\n", "# EOF\n", `{"probeId":1}`} {
		f.Add(s)
	}
	topics := []string{"acme/sites/s/devices/d/metrics/m", "acme/sites/s/devices/d/prom", "acme/sites/s/devices/d/om", "acme/tma/x", "acme/sensors/d"}
	m, err := LoadMapping("testdata/mapping.yaml")
	if err != nil {
		f.Fatal(err)
	}
	p := &pipeline{}
	p.mapping.Store(m)
	f.Fuzz(func(t *testing.T, payload string) {
		for _, topic := range topics {
			d, err := p.decode(inbound{tenant: "acme", topic: topic, probeID: -1, payload: []byte(payload), received: time.Unix(1, 0)})
			if err == nil && len(d.records) == 0 && (d.samples == nil || len(d.samples.series) == 0) {
				t.Fatalf("%s: no error and no records for %q", topic, payload)
			}
		}
	})
}
