package tma_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/tma"
)

// valid is a minimal valid message; cases edit it with strings.Replace.
const valid = `{"probeId":1,"resourceId":2,"messageId":3,"sentTime":4,"data":[{"descriptionId":5,"type":"measurement","observations":[{"time":6,"value":7.5}]}]}`

func edit(old, new string) string {
	if !strings.Contains(valid, old) {
		panic("edit: " + old + " not in valid message")
	}
	return strings.Replace(valid, old, new, 1)
}

// at is the offset of sub in the valid message.
func at(sub string) int {
	i := strings.Index(valid, sub)
	if i < 0 {
		panic("at: " + sub + " not in valid message")
	}
	return i
}

func nested(depth int) string {
	return strings.Repeat(`[`, depth) + strings.Repeat(`]`, depth)
}

type decodeCase struct {
	name string
	body string
	// want lists the expected errors as "path: message" (FieldError.Error);
	// nil means valid. A syntax error is matched by prefix, as a Go
	// error message names the offending character.
	want   []string
	syntax bool
}

func decodeCases() []decodeCase {
	return []decodeCase{
		// --- valid ---
		{name: "minimal", body: valid},
		{name: "whitespace around", body: " \t\r\n" + valid + "\n "},
		{name: "array of two", body: "[" + valid + ", " + edit(`"probeId":1`, `"probeId":0`) + "]"},
		{name: "additional properties at every level", body: `{"probeId":1,"x":{"a":[1,{"b":null}]},"resourceId":2,"messageId":3,"sentTime":4,"data":[{"descriptionId":5,"unit":"ms","type":"event","observations":[{"time":6,"value":0,"note":"ok"}]}],"extra":true}`},
		{name: "integers written as numbers with zero fraction", body: edit(`"probeId":1,"resourceId":2,"messageId":3,"sentTime":4`, `"probeId":1.0,"resourceId":2e0,"messageId":0.3e1,"sentTime":1.5E+1`)},
		{name: "negative zero is zero", body: edit(`"probeId":1`, `"probeId":-0.0e7`)},
		{name: "int64 max", body: edit(`"time":6`, `"time":9223372036854775807`)},
		{name: "int64 max with fraction and exponent", body: edit(`"time":6`, `"time":922337203685477580.70e1`)},
		{name: "zero with the largest exponent", body: edit(`"probeId":1`, `"probeId":0e9223372036854775807`)},
		{name: "many zeros", body: edit(`"time":6`, `"time":6`+strings.Repeat("0", 18)+`e-18`)},
		{name: "value forms", body: edit(`{"time":6,"value":7.5}`, `{"time":6,"value":-0},{"time":6,"value":8},{"time":6,"value":-1.5e-300},{"time":6,"value":1e-400},{"time":6,"value":1.7976931348623157e308}`)},
		{name: "escaped keys and type", body: edit(`"probeId":1,"resourceId":2`, `"probe\u0049d":1,"resource\u0049d":2`)},
		{name: "escaped type", body: edit(`"measurement"`, `"m\u0065asurement"`)},
		{name: "unicode in unknown properties", body: edit(`"probeId":1`, `"probeId":1,"ünï":"😀 \ud83d\ude00 \n\"\\\/\b\f\r\t"`)},
		{name: "nesting at the depth limit", body: edit(`"probeId":1`, `"probeId":1,"x":`+nested(tma.MaxDepth-1))},

		// --- schema violations ---
		{name: "empty object", body: `{}`, want: []string{
			"probeId: is required", "resourceId: is required", "messageId: is required", "sentTime: is required", "data: is required",
		}},
		{name: "empty array", body: `[]`, want: []string{"must be a non-empty array"}},
		{name: "number body", body: `42`, want: []string{"must be an object or a non-empty array of objects"}},
		{name: "null body", body: `null`, want: []string{"must be an object or a non-empty array of objects"}},
		{name: "array element not an object", body: `[` + valid + `,"x",[]]`, want: []string{
			"[1]: must be an object", "[2]: must be an object",
		}},
		{name: "negative id", body: edit(`"probeId":1`, `"probeId":-1`), want: []string{"probeId: must be an integer >= 0"}},
		{name: "fractional id", body: edit(`"messageId":3`, `"messageId":1.5`), want: []string{"messageId: must be an integer >= 0"}},
		{name: "fraction by exponent", body: edit(`"messageId":3`, `"messageId":15e-1`), want: []string{"messageId: must be an integer >= 0"}},
		{name: "tiny positive", body: edit(`"messageId":3`, `"messageId":1e-400`), want: []string{"messageId: must be an integer >= 0"}},
		{name: "string id", body: edit(`"resourceId":2`, `"resourceId":"2"`), want: []string{"resourceId: must be an integer >= 0"}},
		{name: "null id", body: edit(`"sentTime":4`, `"sentTime":null`), want: []string{"sentTime: must be an integer >= 0"}},
		{name: "int64 overflow", body: edit(`"resourceId":2`, `"resourceId":9223372036854775808`), want: []string{"resourceId: must be an integer <= 9223372036854775807"}},
		{name: "int64 overflow by exponent", body: edit(`"time":6`, `"time":1e19`), want: []string{"data[0].observations[0].time: must be an integer <= 9223372036854775807"}},
		{name: "huge exponent", body: edit(`"time":6`, `"time":1e999999999999999999999`), want: []string{"data[0].observations[0].time: must be an integer <= 9223372036854775807"}},
		{name: "exponent beyond int64", body: edit(`"probeId":1`, `"probeId":0e9223372036854775808`), want: []string{"probeId: must be an integer >= 0 (exponent out of range)"}},
		{name: "data empty", body: edit(`"data":[{"descriptionId":5,"type":"measurement","observations":[{"time":6,"value":7.5}]}]`, `"data":[]`), want: []string{"data: must be a non-empty array"}},
		{name: "data object", body: edit(`"data":[{"descriptionId":5,"type":"measurement","observations":[{"time":6,"value":7.5}]}]`, `"data":{}`), want: []string{"data: must be a non-empty array"}},
		{name: "data item not an object", body: edit(`"data":[`, `"data":[1,`), want: []string{"data[0]: must be an object"}},
		{name: "data item empty", body: edit(`"data":[`, `"data":[{},`), want: []string{
			"data[0].type: is required", "data[0].descriptionId: is required", "data[0].observations: is required",
		}},
		{name: "unknown type", body: edit(`"measurement"`, `"metric"`), want: []string{`data[0].type: must be one of "measurement", "event"`}},
		{name: "type case", body: edit(`"measurement"`, `"Measurement"`), want: []string{`data[0].type: must be one of "measurement", "event"`}},
		{name: "type not a string", body: edit(`"measurement"`, `1`), want: []string{`data[0].type: must be one of "measurement", "event"`}},
		{name: "negative description", body: edit(`"descriptionId":5`, `"descriptionId":-5`), want: []string{"data[0].descriptionId: must be an integer >= 0"}},
		{name: "observations empty", body: edit(`[{"time":6,"value":7.5}]`, `[]`), want: []string{"data[0].observations: must be a non-empty array"}},
		{name: "observations null", body: edit(`[{"time":6,"value":7.5}]`, `null`), want: []string{"data[0].observations: must be a non-empty array"}},
		{name: "observation not an object", body: edit(`[{"time":6,"value":7.5}]`, `[{"time":6,"value":7.5},[]]`), want: []string{"data[0].observations[1]: must be an object"}},
		{name: "observation empty", body: edit(`{"time":6,"value":7.5}`, `{}`), want: []string{
			"data[0].observations[0].time: is required", "data[0].observations[0].value: is required",
		}},
		{name: "deep path", body: strings.Replace(edit(`"data":[`, `"data":[`+strings.Repeat(`{"descriptionId":5,"type":"event","observations":[{"time":6,"value":1}]},`, 3)), `{"time":6,"value":7.5}`, `{"time":-6,"value":7.5}`, 1), want: []string{
			"data[3].observations[0].time: must be an integer >= 0",
		}},
		{name: "value string", body: edit(`"value":7.5`, `"value":"7.5"`), want: []string{"data[0].observations[0].value: must be a number"}},
		{name: "value null", body: edit(`"value":7.5`, `"value":null`), want: []string{"data[0].observations[0].value: must be a number"}},
		{name: "value beyond float64", body: edit(`"value":7.5`, `"value":-1.8e308`), want: []string{"data[0].observations[0].value: must be a number within the float64 range (magnitude below 1.8e308)"}},
		{name: "errors in every message of an array", body: `[` + valid + `,` + edit(`"measurement"`, `"x"`) + `,` + edit(`"probeId":1,`, ``) + `]`, want: []string{
			`[1].data[0].type: must be one of "measurement", "event"`, "[2].probeId: is required",
		}},
		{name: "all errors in document order", body: `{"probeId":-1,"data":[{"type":"x","descriptionId":1.5,"observations":[{"time":"t"}]}],"sentTime":true}`, want: []string{
			"probeId: must be an integer >= 0",
			`data[0].type: must be one of "measurement", "event"`,
			"data[0].descriptionId: must be an integer >= 0",
			"data[0].observations[0].time: must be an integer >= 0",
			"data[0].observations[0].value: is required",
			"sentTime: must be an integer >= 0",
			"resourceId: is required",
			"messageId: is required",
		}},

		// --- duplicate keys (RFC 7493) ---
		{name: "duplicate field", body: edit(`"probeId":1`, `"probeId":1,"probeId":1`), want: []string{"probeId: duplicate key"}},
		{name: "duplicate field by escape", body: edit(`"probeId":1`, `"probeId":1,"probe\u0049d":2`), want: []string{"probeId: duplicate key"}},
		{name: "duplicate unknown key", body: edit(`"value":7.5`, `"value":7.5,"x":1,"x":2`), want: []string{"data[0].observations[0].x: duplicate key"}},
		{name: "duplicate key in unknown value", body: edit(`"probeId":1`, `"probeId":1,"x y":[{"a":1,"a":2}]`), want: []string{`["x y"]: contains duplicate key "a"`}},
		{name: "duplicate key among many", body: edit(`"probeId":1`, `"probeId":1,"x":{`+manyKeys(40)+`,"k7":0}`), want: []string{`x: contains duplicate key "k7"`}},

		// --- not JSON ---
		{name: "empty body", body: ``, syntax: true, want: []string{"invalid JSON at offset 0: unexpected end of input"}},
		{name: "truncated", body: `{"probeId":1,`, syntax: true, want: []string{"invalid JSON at offset 13: unexpected end of input"}},
		{name: "truncated array", body: `[` + valid, syntax: true, want: []string{fmt.Sprintf("invalid JSON at offset %d: unexpected end of input", len(valid)+1)}},
		{name: "trailing garbage", body: valid + ` x`, syntax: true, want: []string{fmt.Sprintf("invalid JSON at offset %d: invalid character 'x' after top-level value", len(valid)+1)}},
		{name: "two objects", body: valid + valid, syntax: true, want: []string{fmt.Sprintf("invalid JSON at offset %d: invalid character '{' after top-level value", len(valid))}},
		{name: "NaN", body: edit(`7.5`, `NaN`), syntax: true, want: []string{fmt.Sprintf("data[0].observations[0]: invalid JSON at offset %d: invalid character 'N' looking for beginning of value", at(`7.5`))}},
		{name: "Infinity", body: edit(`7.5`, `-Infinity`), syntax: true, want: []string{fmt.Sprintf("data[0].observations[0]: invalid JSON at offset %d: invalid character 'I' in number", at(`7.5`)+1)}},
		{name: "leading zero", body: edit(`"probeId":1`, `"probeId":01`), syntax: true, want: []string{"invalid JSON at offset 12: invalid character '1' after object member"}},
		{name: "plus sign", body: edit(`"probeId":1`, `"probeId":+1`), syntax: true, want: []string{"invalid JSON"}},
		{name: "bare fraction", body: edit(`7.5`, `.5`), syntax: true, want: []string{"data[0].observations[0]: invalid JSON"}},
		{name: "dot without digits", body: edit(`7.5`, `7.`), syntax: true, want: []string{fmt.Sprintf("data[0].observations[0]: invalid JSON at offset %d: invalid character '}' in number", at(`7.5`)+2)}},
		{name: "exponent without digits", body: edit(`7.5`, `7e+`), syntax: true, want: []string{"data[0].observations[0]: invalid JSON"}},
		{name: "trailing comma", body: edit(`"value":7.5}`, `"value":7.5,}`), syntax: true, want: []string{fmt.Sprintf("data[0].observations[0]: invalid JSON at offset %d: invalid character '}' looking for object key", at(`7.5`)+4)}},
		{name: "trailing comma in array", body: edit(`"value":7.5}]`, `"value":7.5},]`), syntax: true, want: []string{fmt.Sprintf("data[0]: invalid JSON at offset %d: invalid character ']' looking for beginning of value", at(`7.5`)+5)}},
		{name: "missing colon", body: edit(`"probeId":1`, `"probeId" 1`), syntax: true, want: []string{"invalid JSON at offset 11: invalid character '1' after object key (expecting ':')"}},
		{name: "single quotes", body: `{'probeId':1}`, syntax: true, want: []string{"invalid JSON at offset 1: invalid character '\\'' looking for object key"}},
		{name: "comment", body: "// probe\n" + valid, syntax: true, want: []string{"invalid JSON at offset 0"}},
		{name: "bad literal", body: edit(`"sentTime":4`, `"sentTime":nul`), syntax: true, want: []string{fmt.Sprintf("invalid JSON at offset %d: invalid character ',' in literal null", at(`4,"data"`)+3)}},
		{name: "control character in string", body: edit(`"measurement"`, "\"meas\nurement\""), syntax: true, want: []string{fmt.Sprintf("data[0]: invalid JSON at offset %d: invalid control character in string", at(`measurement`)+4)}},
		{name: "invalid UTF-8", body: edit(`"probeId":1`, "\"probeId\":1,\"x\":\"\xff\""), syntax: true, want: []string{"invalid JSON at offset 18: invalid UTF-8 in string"}},
		{name: "UTF-8 encoded surrogate", body: edit(`"probeId":1`, "\"probeId\":1,\"x\":\"\xed\xa0\x80\""), syntax: true, want: []string{"invalid JSON at offset 18: invalid UTF-8 in string"}},
		{name: "lone high surrogate", body: edit(`"probeId":1`, `"probeId":1,"x":"\ud800"`), syntax: true, want: []string{"invalid JSON at offset 18: invalid escape sequence in string"}},
		{name: "lone low surrogate", body: edit(`"probeId":1`, `"probeId":1,"x":"\udc00\ud800"`), syntax: true, want: []string{"invalid JSON at offset 18: invalid escape sequence in string"}},
		{name: "bad escape", body: edit(`"probeId":1`, `"probeId":1,"x":"\x"`), syntax: true, want: []string{"invalid JSON at offset 18: invalid escape sequence in string"}},
		{name: "unterminated string", body: `{"probeId`, syntax: true, want: []string{"invalid JSON at offset 9: unexpected end of input in string"}},
		{name: "nesting beyond the depth limit", body: edit(`"probeId":1`, `"probeId":1,"x":`+nested(tma.MaxDepth)), syntax: true, want: []string{fmt.Sprintf("invalid JSON at offset %d: nesting deeper than %d", 17+tma.MaxDepth-1, tma.MaxDepth)}},
		{name: "syntax error wins over violations", body: `{"probeId":-1,"data":[]`, syntax: true, want: []string{"invalid JSON at offset 23: unexpected end of input"}},
	}
}

func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(`"k%d":%d`, i, i)
	}
	return strings.Join(keys, ",")
}

// TestDecodeTable proves the Go validator equal to the schema file on each
// case, and checks the errors it reports.
func TestDecodeTable(t *testing.T) {
	o := newOracle(t)
	for _, tc := range decodeCases() {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			msgs, err := tma.Decode(body)
			oerr := o.check(body)
			require.Equal(t, tc.want == nil, oerr == nil, "schema oracle: %v", oerr)
			if tc.want == nil {
				require.NoError(t, err)
				require.NotEmpty(t, msgs)
				return
			}
			require.Nil(t, msgs)
			var ve *tma.ValidationError
			require.True(t, errors.As(err, &ve), "error %T %v", err, err)
			require.Equal(t, tc.syntax, ve.Syntax)
			got := make([]string, len(ve.Errors))
			for i, fe := range ve.Errors {
				got[i] = fe.Error()
			}
			if tc.syntax {
				require.Len(t, got, 1)
				require.True(t, strings.HasPrefix(got[0], tc.want[0]), "got %q, want prefix %q", got[0], tc.want[0])
				return
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// TestReferenceExamples classifies every message printed in the TMA usage
// demo (../shared/reference): the Python demo probe's two messages and the
// k8s probe's pretty-printed one are valid. The k8s probe's array has no
// messageId or sentTime, so tma-m_schema_0_4 rejects it; as printed it even
// lacks the closing ']' (a completed copy shows the schema errors), and the
// demo probe's one-line capture is cut at its start.
func TestReferenceExamples(t *testing.T) {
	o := newOracle(t)
	for _, tc := range []struct {
		file    string
		want    []string // nil: valid
		syntax  bool
		obs     int
		resID   int64
		sentUTC string
	}{
		{file: "ref-python-demo-20.json", obs: 20, resID: 101098, sentUTC: "2018-09-03T10:44:15Z"},
		{file: "ref-python-demo-2.json", obs: 2, resID: 101098, sentUTC: "2018-09-03T10:44:15Z"},
		{file: "ref-k8s-probe-2.json", obs: 2, resID: 0, sentUTC: "2018-09-03T13:23:14Z"},
		{file: "java-client-ms.json", obs: 2, resID: 101098, sentUTC: "2018-09-03T10:44:15.123Z"},
		{file: "ref-k8s-probe-array.json", want: []string{"[0].messageId: is required", "[0].sentTime: is required"}},
		{file: "ref-k8s-probe-array-as-printed.txt", syntax: true, want: []string{"invalid JSON at offset 2299: unexpected end of input"}},
		{file: "ref-python-demo-truncated.txt", syntax: true, want: []string{"invalid JSON at offset 0: invalid character 'p' looking for beginning of value"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body := readFixture(t, tc.file)
			msgs, err := tma.Decode(body)
			oerr := o.check(body)
			require.Equal(t, tc.want == nil, oerr == nil, "schema oracle: %v", oerr)
			if tc.want != nil {
				var ve *tma.ValidationError
				require.ErrorAs(t, err, &ve)
				require.Equal(t, tc.syntax, ve.Syntax)
				got := make([]string, len(ve.Errors))
				for i, fe := range ve.Errors {
					got[i] = fe.Error()
				}
				require.Equal(t, tc.want, got)
				return
			}
			require.NoError(t, err)
			require.Len(t, msgs, 1)
			m := msgs[0]
			require.Equal(t, tc.obs, m.Observations())
			require.Equal(t, tc.resID, m.ResourceID)
			require.Equal(t, tc.sentUTC, tma.Time(m.SentTime).Format(time.RFC3339Nano))
			require.JSONEq(t, string(body), string(m.Raw))

			// The model holds what encoding/json reads from the same bytes.
			var want tma.Message
			require.NoError(t, json.Unmarshal(body, &want))
			m.Raw = nil
			require.Equal(t, want, m)
		})
	}
}

func TestDecodeModel(t *testing.T) {
	body := []byte(` [` + valid + `,{"probeId":9,"resourceId":8,"messageId":7,"sentTime":1535971455123,"data":[` +
		`{"descriptionId":1,"type":"event","observations":[{"time":10,"value":1},{"value":-2.5,"time":11e0}]},` +
		`{"type":"measurement","observations":[{"time":12,"value":3}],"descriptionId":2}]}] `)
	msgs, err := tma.Decode(body)
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.Equal(t, valid, string(msgs[0].Raw))
	require.Equal(t, tma.Message{
		ProbeID: 1, ResourceID: 2, MessageID: 3, SentTime: 4,
		Data: []tma.Data{{DescriptionID: 5, Type: tma.Measurement, Observations: []tma.Observation{{Time: 6, Value: 7.5}}}},
		Raw:  msgs[0].Raw,
	}, msgs[0])
	require.Equal(t, tma.Message{
		ProbeID: 9, ResourceID: 8, MessageID: 7, SentTime: 1535971455123,
		Data: []tma.Data{
			{DescriptionID: 1, Type: tma.Event, Observations: []tma.Observation{{Time: 10, Value: 1}, {Time: 11, Value: -2.5}}},
			{DescriptionID: 2, Type: tma.Measurement, Observations: []tma.Observation{{Time: 12, Value: 3}}},
		},
		Raw: msgs[1].Raw,
	}, msgs[1])
	require.Equal(t, 3, msgs[1].Observations())

	// Raw aliases the body (no copy), and the slices are cut to length so
	// appending to one cannot overwrite its neighbour.
	require.Same(t, &body[2], &msgs[0].Raw[0])
	require.Equal(t, len(msgs[0].Raw), cap(msgs[0].Raw))
	d := msgs[1].Data[0]
	require.Equal(t, len(d.Observations), cap(d.Observations))
	_ = append(d.Observations, tma.Observation{Time: 99})
	require.Equal(t, int64(12), msgs[1].Data[1].Observations[0].Time)
}

// Bodies with more observations than the decoder's stack scratch grow it
// on the heap; the result must be the same.
func TestDecodeLargeBody(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for m := range 50 {
		if m > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"probeId":%d,"resourceId":1,"messageId":%d,"sentTime":1,"data":[`, m, m)
		for di := range 7 {
			if di > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"descriptionId":%d,"type":"event","observations":[`, di)
			for oi := range 5 {
				if oi > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `{"time":%d,"value":%d.5}`, m*1000+di*10+oi, oi)
			}
			b.WriteString("]}")
		}
		b.WriteString("]}")
	}
	b.WriteString("]")
	msgs, err := tma.Decode([]byte(b.String()))
	require.NoError(t, err)
	require.Len(t, msgs, 50)
	var want []tma.Message
	require.NoError(t, json.Unmarshal([]byte(b.String()), &want))
	for i := range msgs {
		require.Equal(t, 35, msgs[i].Observations())
		msgs[i].Raw = nil
	}
	require.Equal(t, want, msgs)
}

func TestDecodeErrorCap(t *testing.T) {
	obs := strings.Repeat(`{"time":-1,"value":0},`, tma.MaxErrors+49) + `{"time":-1,"value":0}`
	body := edit(`{"time":6,"value":7.5}`, obs)
	_, err := tma.Decode([]byte(body))
	var ve *tma.ValidationError
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Errors, tma.MaxErrors+1)
	require.Equal(t, "data[0].observations[99].time: must be an integer >= 0", ve.Errors[tma.MaxErrors-1].Error())
	require.Equal(t, tma.FieldError{Message: "... and 50 more errors"}, ve.Errors[tma.MaxErrors])
	require.True(t, strings.HasPrefix(err.Error(), "invalid tma message: data[0].observations[0].time: must be an integer >= 0; "))
}

func TestTime(t *testing.T) {
	for _, tc := range []struct {
		v    int64
		want string
	}{
		{0, "1970-01-01T00:00:00Z"},
		{1535971455, "2018-09-03T10:44:15Z"},
		{1e11 - 1, "5138-11-16T09:46:39Z"},
		{1e11, "1973-03-03T09:46:40Z"},
		{1535971455123, "2018-09-03T10:44:15.123Z"},
		{1e14 - 1, "5138-11-16T09:46:39.999Z"},
		{1e14, "1973-03-03T09:46:40Z"},
		{1535971455123456, "2018-09-03T10:44:15.123456Z"},
		{1e17 - 1, "5138-11-16T09:46:39.999999Z"},
		{1e17, "1973-03-03T09:46:40Z"},
		{1535971455123456789, "2018-09-03T10:44:15.123456789Z"},
		{9223372036854775807, "2262-04-11T23:47:16.854775807Z"},
		{-1, "1969-12-31T23:59:59Z"},
	} {
		t.Run(fmt.Sprint(tc.v), func(t *testing.T) {
			got := tma.Time(tc.v)
			require.Equal(t, time.UTC, got.Location())
			require.Equal(t, tc.want, got.Format(time.RFC3339Nano))
		})
	}
}

// The hot path: a body with one message allocates only the three slices
// of the result (messages, data items, observations).
func TestDecodeAllocations(t *testing.T) {
	body := readFixture(t, "ref-python-demo-20.json")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := tma.Decode(body); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, allocs, 3.0)
}

// compact20 is a 20-observation message as a Java probe sends it: one
// description, millisecond times, no whitespace.
func compact20() []byte {
	var b strings.Builder
	b.WriteString(`{"probeId":1098,"resourceId":101098,"messageId":42,"sentTime":1535971455123,"data":[{"type":"measurement","descriptionId":34,"observations":[`)
	for i := range 20 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"time":%d,"value":%d.%03d}`, 1535971455123+int64(i)*50, 300+i*7, i*37)
	}
	b.WriteString(`]}]}`)
	return []byte(b.String())
}

func BenchmarkDecode20(b *testing.B) {
	pretty, err := os.ReadFile(filepath.Join("testdata", "ref-python-demo-20.json"))
	require.NoError(b, err)
	var compact bytes.Buffer
	require.NoError(b, json.Compact(&compact, pretty))
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"java-1x20", compact20()},
		{"reference-20x1-pretty", pretty},
		{"reference-20x1-compact", compact.Bytes()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				msgs, err := tma.Decode(tc.body)
				if err != nil || msgs[0].Observations() != 20 {
					b.Fatal(err)
				}
			}
		})
	}
}
