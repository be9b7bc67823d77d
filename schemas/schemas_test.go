package schemas_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/schemas"
)

func TestFSMatchesAccessors(t *testing.T) {
	for _, tc := range []struct {
		file string
		want string
	}{
		{schemas.TMAMessageFile, string(schemas.TMAMessageJSONSchema())},
		{schemas.SampleBatchFile, schemas.SampleBatchAvsc()},
		{schemas.AlertFile, schemas.AlertAvsc()},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := fs.ReadFile(schemas.FS, tc.file)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(b))
			require.True(t, json.Valid(b), "not JSON")
		})
	}
	// The accessor hands out a copy: callers cannot corrupt the schema.
	s := schemas.TMAMessageJSONSchema()
	s[0] = 'x'
	require.Equal(t, byte('{'), schemas.TMAMessageJSONSchema()[0])
}

func compileTMA(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.TMAMessageJSONSchema()))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource(schemas.TMAMessageSchemaID, doc))
	sch, err := c.Compile(schemas.TMAMessageSchemaID)
	require.NoError(t, err)
	return sch
}

// The thorough table lives in pkg/tma, next to the Go validator it proves
// equal; this only checks the file is a usable schema with the right $id.
func TestTMAMessageSchemaCompiles(t *testing.T) {
	sch := compileTMA(t)
	for _, tc := range []struct {
		name  string
		doc   string
		valid bool
	}{
		{"minimal", `{"probeId":0,"resourceId":1,"messageId":2,"sentTime":3,"data":[{"descriptionId":4,"type":"event","observations":[{"time":5,"value":0}]}]}`, true},
		{"empty data", `{"probeId":0,"resourceId":1,"messageId":2,"sentTime":3,"data":[]}`, false},
		{"int64 overflow", `{"probeId":9223372036854775808,"resourceId":1,"messageId":2,"sentTime":3,"data":[{"descriptionId":4,"type":"event","observations":[{"time":5,"value":0}]}]}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.doc))
			require.NoError(t, err)
			err = sch.Validate(v)
			require.Equal(t, tc.valid, err == nil, "validate: %v", err)
		})
	}
}

func sampleBatch() map[string]any {
	return map[string]any{
		"tenant": "acme",
		"source": "tma",
		"series": []any{
			map[string]any{
				"labels": []any{
					map[string]any{"name": "__name__", "value": "cpu_seconds_total"},
					map[string]any{"name": "resource_id", "value": "101098"},
				},
				"samples": []any{
					map[string]any{"timestamp_ms": int64(1535971455000), "value": 20000.00001},
					map[string]any{"timestamp_ms": int64(1535971456000), "value": 20001.5},
				},
				"metadata": goavro.Union("io.tmaflow.Metadata", map[string]any{
					"type": "COUNTER", "unit": "seconds", "help": "CPU time.",
				}),
			},
			map[string]any{
				"labels": []any{
					map[string]any{"name": "__name__", "value": "tma_description_7"},
				},
				"samples": []any{
					map[string]any{"timestamp_ms": int64(0), "value": -1.25},
				},
				"metadata": nil,
			},
		},
	}
}

// Single-object encoding is the value format of topic-samples and
// topic-metrics: C3 01, the schema's CRC-64-AVRO fingerprint (little
// endian), then the binary body.
func TestSampleBatchSingleObjectRoundTrip(t *testing.T) {
	codec, err := goavro.NewCodec(schemas.SampleBatchAvsc())
	require.NoError(t, err)
	name := codec.TypeName()
	require.Equal(t, "io.tmaflow.SampleBatch", name.String())

	in := sampleBatch()
	buf, err := codec.SingleFromNative(nil, in)
	require.NoError(t, err)
	require.Equal(t, []byte{0xC3, 0x01}, buf[:2])
	require.Equal(t, uint64(codec.Rabin), binary.LittleEndian.Uint64(buf[2:10]))

	out, rest, err := codec.NativeFromSingle(buf)
	require.NoError(t, err)
	require.Empty(t, rest)
	// goavro decodes a non-null union as map{type name: value}, which is
	// exactly what goavro.Union built.
	require.Equal(t, in, out)
}

// Metadata fields have defaults, so producers that know only the type (or
// nothing) can leave the rest out, and older records stay readable when
// fields are added.
func TestSampleBatchDefaults(t *testing.T) {
	codec, err := goavro.NewCodec(schemas.SampleBatchAvsc())
	require.NoError(t, err)
	in := map[string]any{
		"tenant": "t", "source": "rule",
		"series": []any{
			map[string]any{
				"labels":   []any{map[string]any{"name": "__name__", "value": "up"}},
				"samples":  []any{map[string]any{"timestamp_ms": int64(1), "value": 1.0}},
				"metadata": goavro.Union("io.tmaflow.Metadata", map[string]any{}),
			},
			map[string]any{
				"labels":  []any{map[string]any{"name": "__name__", "value": "down"}},
				"samples": []any{},
			},
		},
	}
	buf, err := codec.BinaryFromNative(nil, in)
	require.NoError(t, err)
	out, _, err := codec.NativeFromBinary(buf)
	require.NoError(t, err)
	series := out.(map[string]any)["series"].([]any)
	require.Equal(t, map[string]any{"io.tmaflow.Metadata": map[string]any{"type": "UNKNOWN", "unit": "", "help": ""}},
		series[0].(map[string]any)["metadata"])
	require.Nil(t, series[1].(map[string]any)["metadata"])
}

func TestSampleBatchRejectsBadRecords(t *testing.T) {
	codec, err := goavro.NewCodec(schemas.SampleBatchAvsc())
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"missing tenant", func(m map[string]any) { delete(m, "tenant") }},
		{"unknown metric type", func(m map[string]any) {
			s := m["series"].([]any)[0].(map[string]any)
			s["metadata"] = goavro.Union("io.tmaflow.Metadata", map[string]any{"type": "COUNTERX"})
		}},
		{"string timestamp", func(m map[string]any) {
			s := m["series"].([]any)[0].(map[string]any)
			s["samples"] = []any{map[string]any{"timestamp_ms": "now", "value": 1.0}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := sampleBatch()
			tc.mutate(in)
			_, err := codec.SingleFromNative(nil, in)
			require.Error(t, err)
		})
	}
}

const alertJSON = `{
  "labels": {"alertname": "HighCPU", "resource": "101098", "severity": "page"},
  "annotations": {"summary": "CPU above 90% for 1m"},
  "startsAt": "2026-01-02T03:04:05.678Z",
  "endsAt": "2026-01-02T03:08:05.678Z",
  "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=cpu+%3E+0.9",
  "state": "firing",
  "tenant": "acme",
  "fingerprint": "0123456789abcdef"
}`

// topic-alerts carries the alert as plain JSON (postable to Alertmanager),
// so the codec is goavro's standard-JSON one in both directions.
func TestAlertStandardJSONRoundTrip(t *testing.T) {
	codec, err := goavro.NewCodecForStandardJSONFull(schemas.AlertAvsc())
	require.NoError(t, err)
	name := codec.TypeName()
	require.Equal(t, "io.tmaflow.Alert", name.String())

	native, _, err := codec.NativeFromTextual([]byte(alertJSON))
	require.NoError(t, err)
	text, err := codec.TextualFromNative(nil, native)
	require.NoError(t, err)
	require.JSONEq(t, alertJSON, string(text))

	single, err := codec.SingleFromNative(nil, native)
	require.NoError(t, err)
	back, _, err := codec.NativeFromSingle(single)
	require.NoError(t, err)
	require.Equal(t, native, back)
}

func TestAlertDefaultsAndRejects(t *testing.T) {
	codec, err := goavro.NewCodecForStandardJSONFull(schemas.AlertAvsc())
	require.NoError(t, err)

	t.Run("optional fields default", func(t *testing.T) {
		native, _, err := codec.NativeFromTextual([]byte(`{"labels":{"alertname":"X"},"startsAt":"2026-01-02T03:04:05Z","endsAt":"2026-01-02T03:04:05Z","state":"resolved","tenant":"t","fingerprint":"0000000000000001"}`))
		require.NoError(t, err)
		m := native.(map[string]any)
		require.Equal(t, map[string]any{}, m["annotations"])
		require.Equal(t, "", m["generatorURL"])
	})
	for _, tc := range []struct{ name, doc string }{
		{"unknown state", strings.Replace(alertJSON, `"firing"`, `"pending"`, 1)},
		{"missing tenant", strings.Replace(alertJSON, `"tenant": "acme",`, ``, 1)},
		{"non-string label", strings.Replace(alertJSON, `"severity": "page"`, `"severity": 1`, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := codec.NativeFromTextual([]byte(tc.doc))
			require.Error(t, err)
		})
	}
}
