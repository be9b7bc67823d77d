package tma_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/tma"
)

// FuzzDecode checks, for any body: no panic; Decode accepts exactly what
// the oracle (RFC 7493 + the JSON Schema file + float64 range) accepts;
// rejections are well-formed; and an accepted body's model survives both
// decoding each Raw alone and re-marshalling.
func FuzzDecode(f *testing.F) {
	for _, tc := range decodeCases() {
		f.Add([]byte(tc.body))
	}
	fixtures, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	require.NoError(f, err)
	for _, name := range fixtures {
		b, err := os.ReadFile(name)
		require.NoError(f, err)
		f.Add(b)
	}
	o := newOracle(f)

	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, err := tma.Decode(body)
		oerr := o.check(body)
		if (err == nil) != (oerr == nil) {
			t.Fatalf("decode: %v\noracle: %v", err, oerr)
		}
		if err != nil {
			var ve *tma.ValidationError
			require.ErrorAs(t, err, &ve)
			require.Nil(t, msgs)
			require.NotEmpty(t, ve.Errors)
			require.LessOrEqual(t, len(ve.Errors), tma.MaxErrors+1)
			if ve.Syntax {
				require.Len(t, ve.Errors, 1)
			}
			if !json.Valid(body) {
				require.True(t, ve.Syntax, "not JSON but no syntax error: %v", err)
			}
			return
		}

		require.NotEmpty(t, msgs)
		model := stripRaw(msgs)
		for i, m := range msgs {
			one, err := tma.Decode(m.Raw)
			require.NoError(t, err, "message %d alone", i)
			require.Equal(t, model[i:i+1], stripRaw(one))
		}
		out, err := json.Marshal(model)
		require.NoError(t, err)
		require.NoError(t, o.check(out), "re-marshalled model not valid")
		again, err := tma.Decode(out)
		require.NoError(t, err)
		require.Equal(t, model, stripRaw(again))
	})
}

func stripRaw(msgs []tma.Message) []tma.Message {
	out := make([]tma.Message, len(msgs))
	for i, m := range msgs {
		m.Raw = nil
		out[i] = m
	}
	return out
}
