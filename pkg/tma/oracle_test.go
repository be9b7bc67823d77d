package tma_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/tma"
	"github.com/tmaflow/tmaflow/schemas"
)

// oracle decides validity independently of tma.Decode: well-formedness by
// RFC 7493 (jsontext: no duplicate keys, valid UTF-8) within tma.MaxDepth,
// then the JSON Schema file via santhosh-tekuri/jsonschema, then the one
// documented rule the schema cannot say: observation values must fit a
// float64.
type oracle struct {
	sch *jsonschema.Schema
}

func newOracle(tb testing.TB) *oracle {
	tb.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.TMAMessageJSONSchema()))
	require.NoError(tb, err)
	c := jsonschema.NewCompiler()
	require.NoError(tb, c.AddResource(schemas.TMAMessageSchemaID, doc))
	sch, err := c.Compile(schemas.TMAMessageSchemaID)
	require.NoError(tb, err)
	return &oracle{sch: sch}
}

// check returns nil for a valid body, else why it is not.
func (o *oracle) check(body []byte) error {
	if !jsontext.Value(body).IsValid() {
		return fmt.Errorf("not RFC 7493 JSON")
	}
	if d := depth(body); d > tma.MaxDepth {
		return fmt.Errorf("nesting depth %d beyond %d", d, tma.MaxDepth)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("unmarshal: %w", err)
	}
	msgs := []any{doc}
	if arr, ok := doc.([]any); ok {
		if len(arr) == 0 {
			return fmt.Errorf("empty array")
		}
		msgs = arr
	}
	for i, m := range msgs {
		if err := o.sch.Validate(m); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if err := finiteValues(m); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
	}
	return nil
}

// depth returns the deepest nesting of arrays and objects in valid JSON.
func depth(body []byte) int {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	deepest := 0
	for {
		if _, err := dec.ReadToken(); err != nil {
			return deepest
		}
		deepest = max(deepest, dec.StackDepth())
	}
}

// finiteValues checks the observation values of a schema-valid message.
func finiteValues(msg any) error {
	for _, d := range msg.(map[string]any)["data"].([]any) {
		for _, o := range d.(map[string]any)["observations"].([]any) {
			v := o.(map[string]any)["value"].(json.Number)
			if _, err := strconv.ParseFloat(string(v), 64); err != nil {
				return fmt.Errorf("value %s: %w", v, err)
			}
		}
	}
	return nil
}
