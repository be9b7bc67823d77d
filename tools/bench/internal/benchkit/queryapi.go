package benchkit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// QueryAPI is a Prometheus HTTP query API (tmaflow's persister, or
// Prometheus) reached as a probe, HTTP Basic with its credentials.
type QueryAPI struct {
	Client         *http.Client
	URL            string // http://host:port
	User, Password string
}

// Series lists the label sets of the series match selects.
func (q QueryAPI) Series(ctx context.Context, match string) ([]map[string]string, error) {
	var data []map[string]string
	err := q.get(ctx, "series", "/api/v1/series", url.Values{"match[]": {match}}, &data)
	return data, err
}

// RangeSeries is one series of a range query's matrix.
type RangeSeries struct {
	Metric map[string]string `json:"metric"`
	// Values are [unix seconds, "value"] pairs.
	Values [][2]json.RawMessage `json:"values"`
}

// Sum is the sum of the series' values.
func (s RangeSeries) Sum() (float64, error) {
	total := 0.0
	for _, v := range s.Values {
		var str string
		if err := json.Unmarshal(v[1], &str); err != nil {
			return 0, fmt.Errorf("range value %s: %w", v[1], err)
		}
		f, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return 0, fmt.Errorf("range value %q: %w", str, err)
		}
		total += f
	}
	return total, nil
}

// QueryRange evaluates expr from start to end every step.
func (q QueryAPI) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]RangeSeries, error) {
	var data struct {
		ResultType string        `json:"resultType"`
		Result     []RangeSeries `json:"result"`
	}
	err := q.get(ctx, "query_range", "/api/v1/query_range", url.Values{
		"query": {expr},
		"start": {unixSeconds(start)},
		"end":   {unixSeconds(end)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	}, &data)
	if err == nil && data.ResultType != "matrix" {
		err = fmt.Errorf("query_range %s: result type %q, want matrix", expr, data.ResultType)
	}
	return data.Result, err
}

func unixSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// get reads an API answer's data into data.
func (q QueryAPI) get(ctx context.Context, what, path string, params url.Values, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, q.URL+path+"?"+params.Encode(), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if q.User != "" {
		req.SetBasicAuth(q.User, q.Password)
	}
	client := q.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %s: decode: %w", what, resp.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s: %s", what, resp.Status, body.Error)
	}
	if err := json.Unmarshal(body.Data, data); err != nil {
		return fmt.Errorf("%s: decode data: %w", what, err)
	}
	return nil
}
