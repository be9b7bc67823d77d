package persister

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// response is the envelope of every API answer.
type response struct {
	Status    string
	Data      any
	ErrorType string
	Error     string
	Warnings  []string
	Infos     []string
}

// jsonAppender is data that writes its own JSON.
type jsonAppender interface {
	appendJSON(b []byte) ([]byte, error)
}

// encode writes the envelope with Prometheus' field order and omissions.
// Data writing its own JSON goes out verbatim; other data through
// encoding/json, whose output equals Prometheus' standard-library
// compatible encoder.
func (r response) encode() ([]byte, error) {
	b := make([]byte, 0, 512)
	b = append(b, `{"status":`...)
	b = strconv.AppendQuote(b, r.Status)
	if r.Data != nil {
		b = append(b, `,"data":`...)
		var err error
		if a, ok := r.Data.(jsonAppender); ok {
			b, err = a.appendJSON(b)
		} else {
			var d []byte
			d, err = json.Marshal(r.Data)
			b = append(b, d...)
		}
		if err != nil {
			return nil, fmt.Errorf("encode response data: %w", err)
		}
	}
	add := func(name string, v any) error {
		j, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode response %s: %w", name, err)
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = append(b, j...)
		return nil
	}
	var errs []error
	if r.ErrorType != "" {
		errs = append(errs, add("errorType", r.ErrorType))
	}
	if r.Error != "" {
		errs = append(errs, add("error", r.Error))
	}
	if len(r.Warnings) > 0 {
		errs = append(errs, add("warnings", r.Warnings))
	}
	if len(r.Infos) > 0 {
		errs = append(errs, add("infos", r.Infos))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// queryData is the data of /query and /query_range.
type queryData struct {
	ResultType parser.ValueType
	Result     parser.Value
}

// appendJSON writes the result as Prometheus does: timestamps as seconds
// with millisecond fractions, values as strings ("NaN", "+Inf").
func (d queryData) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"resultType":`...)
	b = strconv.AppendQuote(b, string(d.ResultType))
	b = append(b, `,"result":`...)
	var err error
	switch v := d.Result.(type) {
	case promql.Vector:
		b, err = appendVector(b, v)
	case promql.Matrix:
		b, err = appendMatrix(b, v)
	case promql.Scalar, promql.String:
		// Prometheus has no encoder of its own for these and uses
		// their MarshalJSON (plain 'f' formatting for scalars).
		var j []byte
		j, err = json.Marshal(v)
		b = append(b, j...)
	default:
		return nil, fmt.Errorf("unexpected query result type %T", d.Result)
	}
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// seriesData is the data of /series.
type seriesData []labels.Labels

func (d seriesData) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '[')
	for i, ls := range d {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendLabels(b, ls)
	}
	return append(b, ']'), nil
}

func appendVector(b []byte, v promql.Vector) ([]byte, error) {
	b = append(b, '[')
	for i, s := range v {
		if i > 0 {
			b = append(b, ',')
		}
		if s.H != nil {
			// Only floats are ever appended; histograms can only come
			// from functions over them. promql marshals those itself.
			h, err := json.Marshal(s)
			if err != nil {
				return nil, fmt.Errorf("encode histogram sample: %w", err)
			}
			b = append(b, h...)
			continue
		}
		b = append(b, `{"metric":`...)
		b = appendLabels(b, s.Metric)
		b = append(b, `,"value":`...)
		b = appendPoint(b, s.T, s.F)
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

func appendMatrix(b []byte, m promql.Matrix) ([]byte, error) {
	b = append(b, '[')
	for i, s := range m {
		if i > 0 {
			b = append(b, ',')
		}
		if len(s.Histograms) > 0 {
			h, err := json.Marshal(s)
			if err != nil {
				return nil, fmt.Errorf("encode histogram series: %w", err)
			}
			b = append(b, h...)
			continue
		}
		b = append(b, `{"metric":`...)
		b = appendLabels(b, s.Metric)
		// As in Prometheus, a series without floats has no values key.
		if len(s.Floats) > 0 {
			b = append(b, `,"values":[`...)
			for j, p := range s.Floats {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendPoint(b, p.T, p.F)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, ']'), nil
}

func appendLabels(b []byte, ls labels.Labels) []byte {
	b = append(b, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, l.Name)
		b = append(b, ':')
		b = appendString(b, l.Value)
	})
	return append(b, '}')
}

// appendString writes a JSON string as Prometheus writes label names and
// values: quotes, backslashes and control characters escaped, everything
// else (HTML characters, non-ASCII) verbatim.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func appendPoint(b []byte, t int64, v float64) []byte {
	b = append(b, '[')
	b = appendTimestamp(b, t)
	b = append(b, ',')
	b = appendFloat(b, v)
	return append(b, ']')
}

// appendTimestamp writes milliseconds as seconds with up to three
// decimals, without float rounding.
func appendTimestamp(b []byte, t int64) []byte {
	if t < 0 {
		b = append(b, '-')
		t = -t
	}
	b = strconv.AppendInt(b, t/1000, 10)
	if frac := t % 1000; frac != 0 {
		b = append(b, '.')
		if frac < 100 {
			b = append(b, '0')
		}
		if frac < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, frac, 10)
	}
	return b
}

// appendFloat writes a value as a JSON string, exponent notation only for
// very small or large magnitudes.
func appendFloat(b []byte, f float64) []byte {
	b = append(b, '"')
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	return append(b, '"')
}
