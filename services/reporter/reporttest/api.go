// Package reporttest serves the part of the Prometheus query API a report
// reads (/api/v1/query and /api/v1/query_range) over any storage, for the
// reporter's tests and the report benchmark.
package reporttest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// API answers queries over Storage with the PromQL engine.
type API struct {
	storage storage.Queryable
	engine  *promql.Engine
	header  string

	mu      sync.Mutex
	tenants []string
}

// NewAPI serves st; tenantHeader names the header whose values Tenants
// records ("" records none).
func NewAPI(st storage.Queryable, tenantHeader string) *API {
	return &API{
		storage: st,
		header:  tenantHeader,
		engine: promql.NewEngine(promql.EngineOpts{
			MaxSamples:           50_000_000,
			Timeout:              time.Minute,
			LookbackDelta:        5 * time.Minute,
			EnableAtModifier:     true,
			EnableNegativeOffset: true,
		}),
	}
}

// Tenants are the tenant header values of the requests so far.
func (a *API) Tenants() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.tenants...)
}

// ServeHTTP answers /api/v1/query and /api/v1/query_range.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.header != "" {
		a.mu.Lock()
		a.tenants = append(a.tenants, r.Header.Get(a.header))
		a.mu.Unlock()
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	var (
		q   promql.Query
		err error
	)
	switch r.URL.Path {
	case "/api/v1/query":
		var ts time.Time
		if ts, err = parseTime(r.Form.Get("time")); err == nil {
			q, err = a.engine.NewInstantQuery(r.Context(), a.storage, nil, r.Form.Get("query"), ts)
		}
	case "/api/v1/query_range":
		var start, end time.Time
		var step float64
		start, err = parseTime(r.Form.Get("start"))
		if err == nil {
			end, err = parseTime(r.Form.Get("end"))
		}
		if err == nil {
			step, err = strconv.ParseFloat(r.Form.Get("step"), 64)
		}
		if err == nil {
			q, err = a.engine.NewRangeQuery(r.Context(), a.storage, nil, r.Form.Get("query"), start, end, time.Duration(step*float64(time.Second)))
		}
	default:
		writeError(w, http.StatusNotFound, fmt.Errorf("no endpoint %s", r.URL.Path))
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	defer q.Close()
	res := q.Exec(r.Context())
	if res.Err != nil {
		writeError(w, http.StatusUnprocessableEntity, res.Err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	err = json.NewEncoder(w).Encode(map[string]any{
		"status": "success",
		"data":   map[string]any{"resultType": res.Value.Type(), "result": res.Value},
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func parseTime(s string) (time.Time, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: %w", s, err)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(math.Round(frac*1e3))*int64(time.Millisecond)).UTC(), nil
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": "bad_data", "error": err.Error()})
}
